"""The feed against a live archive writer: complete and ordered while events keep arriving."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import history_samples
import sqlalchemy as sa
from history_samples import T0, mixed_events
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.container import Container
from adapters.db import create_engine
from adapters.settings import Settings
from adapters.tables import events
from domain.codec import encode
from projections.archive import Archive
from projections.base import Envelope

WRITERS = 4
COMMITS_PER_WRITER = 20
POLL_SECONDS = 0.002
ARCHIVE = Archive()


# This module's own database and an empty archive around each test (history_samples).
history_settings = history_samples.history_settings
container = history_samples.container
app = history_samples.app
empty_archive = history_samples.empty_archive


async def _archive_batch(engine: AsyncEngine, writer: int, commit: int, size: int) -> None:
    """Commit ``size`` events through the archive writer, holding the transaction a while."""
    sample = mixed_events(size, start=T0 + timedelta(hours=writer, minutes=commit))
    batch = []
    for i, event in enumerate(sample):
        name, version, data = encode(event)
        stream_id = f"{1753689600000 + commit * 10 + i}-0"
        batch.append(Envelope(writer, stream_id, name, version, data, event))
    async with engine.begin() as conn:
        await ARCHIVE.apply(conn, batch)
        await asyncio.sleep(random.uniform(0.001, 0.005))


async def _writer(engine: AsyncEngine, writer: int) -> None:
    for commit in range(COMMITS_PER_WRITER):
        await _archive_batch(engine, writer, commit, random.randint(1, 6))


def _run_writers(settings: Settings) -> None:
    """Concurrent archive writers on their own loop (the test client blocks the test's loop)."""

    async def run() -> None:
        engine = create_engine(settings, pool_size=WRITERS)
        try:
            await asyncio.gather(*(_writer(engine, w) for w in range(WRITERS)))
        finally:
            await engine.dispose()

    asyncio.run(run())


async def test_feed_pagination_is_complete_and_ordered_under_concurrent_appends(
    container: Container,
    history_settings: Settings,
    client: AsyncTestClient[Litestar],
    auth: Callable[..., dict[str, str]],
) -> None:
    headers = auth(role="analyst")
    writers = ThreadPoolExecutor(1).submit(_run_writers, history_settings)
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        writers_finished = writers.done()  # looked at before the read, so the read sees them
        response = await client.get(f"/api/events?after={after}&limit=20", headers=headers)
        page = response.json()
        seen.extend(page["events"])
        after = page["next"] or (seen[-1]["position"] if seen else 0)
        if page["next"] is None and writers_finished:
            break
        if page["next"] is None:
            await asyncio.sleep(POLL_SECONDS)  # caught up: poll again shortly, as readers do
    writers.result()

    async with container.engine.connect() as conn:
        archived = (
            await conn.execute(
                sa.select(events.c.position, events.c.shard, events.c.stream_id).order_by(
                    "position"
                )
            )
        ).all()
    positions = [e["position"] for e in seen]
    assert positions == sorted(set(positions)), "every event once, in increasing order"
    assert positions == [row.position for row in archived], "no event skipped"
    assert [e["id"] for e in seen] == [f"{row.shard}-{row.stream_id}" for row in archived]
    assert len(seen) >= WRITERS * COMMITS_PER_WRITER
