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
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    """Exempt the start-up heap from collection and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
