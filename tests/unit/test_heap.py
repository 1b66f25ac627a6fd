"""adapters.heap: the start-up heap is frozen and young collections are rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from adapters import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_what_exists_and_raises_the_young_threshold() -> None:
    survivor = [object() for _ in range(100)]
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    heap.settle()

    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD


@pytest.mark.usefixtures("restored_gc")
def test_frozen_exempts_the_heap_only_inside_the_block() -> None:
    gc.unfreeze()
    with heap.frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
