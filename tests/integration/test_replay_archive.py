"""What replay reads: the whole archive once, in position order, chunk by chunk, with the read
ahead gone when the reader is left early."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

import sqlalchemy as sa

from adapters.container import Container
from adapters.tables import events
from domain.events import ProgressSaved
from projections.archive_reader import ArchiveChunks

Drain = Callable[[], Awaitable[int]]


async def _archive_some(container: Container, drain: Drain, count: int) -> list[str]:
    """``count`` saves of a new user, archived; their stream ids."""
    clerk = f"user_{secrets.token_hex(6)}"
    now = container.clock.now()
    ids = []
    for i in range(count):
        at = now - timedelta(minutes=count - i)
        event = ProgressSaved(
            occurred_at=at, actor=clerk, clerk_id=clerk, tmdb_id=str(i), current_time=i
        )
        ids.append(await container.events.append(clerk, event))
    await drain()
    return ids


async def test_chunks_hold_every_archived_event_once_in_position_order(
    container: Container, drain: Drain
) -> None:
    """The archive is shared with the run's other tests, which append (and erase, whose events
    replay skips) meanwhile: this test's own events are what it can pin exactly."""
    ids = await _archive_some(container, drain, 30)
    async with container.engine.connect() as conn:
        query = sa.select(events.c.stream_id, events.c.type).order_by(events.c.position)
        archived = [tuple(row) for row in await conn.execute(query)]

    seen: list[tuple[str, str]] = []
    sizes: list[int] = []
    async with ArchiveChunks(container.engine, container.keyring, chunk=7) as chunks:
        async for batch, read in chunks:
            seen += [(e.stream_id, e.type) for e in batch]
            sizes.append(read)

    mine = [(stream_id, "progress.saved") for stream_id in ids]
    assert [row for row in archived if row[0] in ids] == mine
    assert [row for row in seen if row[0] in ids] == mine  # once each, in position order
    assert len(set(seen)) == len(seen)
    assert sum(sizes) >= len(seen) and max(sizes) == 7


async def test_leaving_early_leaves_no_read_ahead_running(
    container: Container, drain: Drain
) -> None:
    await _archive_some(container, drain, 3)
    before = asyncio.all_tasks()
    async with ArchiveChunks(container.engine, container.keyring, chunk=1) as chunks:
        batch, read = await anext(chunks)
        # one row read (replay skips it, leaving the batch empty, if another test erased it)
        assert read == 1 and len(batch) <= 1
        assert asyncio.all_tasks() - before  # the next chunk is being read
    assert not [t for t in asyncio.all_tasks() - before if not t.done()]
