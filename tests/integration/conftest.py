"""Fixtures for tests that need stores of their own (see ``projector_env``).

``stack`` is a module's own database and Redis index with the run's settings; a module that
needs other settings defines its own ``stack`` fixture, which pytest uses in place of this
one. ``iso`` is a container on that stack. ``sqlite_stack`` and ``on_sqlite`` are the same on
a SQLite database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from projector_env import Stack, isolated_stack

from adapters.container import Container
from adapters.settings import Settings
from services.container import build_container


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack() as built:
        yield built


@pytest.fixture
async def iso(stack: Stack) -> AsyncIterator[Container]:
    """A container on the module's own stores, bound to the running test's event loop."""
    container = build_container(stack.settings)
    yield container
    await container.close()


@pytest.fixture(scope="module")
def sqlite_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(sqlite_dir=str(tmp_path_factory.mktemp("sqlite"))) as built:
        yield built


@pytest.fixture
async def on_sqlite(sqlite_stack: Stack) -> AsyncIterator[Container]:
    container = build_container(sqlite_stack.settings)
    assert container.settings.is_sqlite
    yield container
    await container.close()
