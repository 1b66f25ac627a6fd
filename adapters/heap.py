"""Garbage-collector settings for long-running Medio processes (API servers, workers).

After start-up a process holds a large, permanent heap: the framework's routes and schemas,
SQLAlchemy metadata, msgspec types, compiled regexes. CPython's cyclic collector walks every
tracked object of the oldest generation on each full collection, so under load an API process
stopped for tens of milliseconds at a time to re-examine objects that can never be garbage
(``python -m bench ingest``: p99 over 100 ms at 64 connections, from these pauses alone).

``settle`` runs once, when start-up is over: one last collection, then ``gc.freeze()`` moves
every surviving object into the permanent generation, which collections skip. The young
generation's threshold is raised as well: nearly all per-request garbage is freed by reference
counting, so collecting every 700 allocations mostly walks live request objects for nothing.
Cycles are still collected, just in bigger, rarer steps.

``frozen`` is the same exemption for a bounded stretch of work in a process that goes on
afterwards (a projector run inside an RQ worker): a batch's objects live across many
allocations, so they reach the oldest generation and set off full collections every few
batches, each walking the whole heap (modules, pools, caches), a sixth of the projector's CPU.
It unfreezes on exit, so it is not for a process that has called ``settle``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    """Exempt the start-up heap from collection and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    """Exempt what exists now from full collections until the block ends (then hand it back)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
