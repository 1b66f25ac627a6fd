"""Projection, replay and ``--verify`` on the embedded SQLite database (``medio dev``)."""

from __future__ import annotations

import sqlalchemy as sa

from adapters.container import Container
from adapters.tables import events, stats_totals
from bench.workload import append_all, realistic_events
from projections.replay import rebuild, verify
from projections.runtime import project_pending


async def test_sqlite_archive_verify_and_rebuild(on_sqlite: Container) -> None:
    await append_all(on_sqlite.redis, 1, realistic_events(1500, seed=51))
    assert await project_pending(on_sqlite) == 1500
    async with on_sqlite.engine.connect() as conn:
        positions = list((await conn.execute(sa.select(events.c.position))).scalars())
    assert sorted(positions) == list(range(1, 1501))
    assert (await verify(on_sqlite)).differences == {}

    async with on_sqlite.engine.begin() as conn:
        await conn.execute(stats_totals.update().values(watched_ms=stats_totals.c.watched_ms + 1))
    assert list((await verify(on_sqlite)).differences) == ["stats"]

    report = await rebuild(on_sqlite, ["stats"])
    assert report.events == 1500
    assert (await verify(on_sqlite)).differences == {}
