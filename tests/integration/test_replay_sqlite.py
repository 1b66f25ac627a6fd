"""Projection, replay and ``--verify`` on the embedded SQLite database (``medio dev``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from projector_env import Stack, isolated_stack

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import events, stats_totals
from bench.workload import append_all, realistic_events
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from services.container import build_container


@pytest.fixture(scope="module")
def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with isolated_stack(sqlite_dir=str(tmp_path_factory.mktemp("sqlite"))) as built:
        yield built


@pytest.fixture
async def iso(stack: Stack) -> AsyncIterator[Container]:
    container = build_container(stack.settings)
    assert container.settings.is_sqlite
    yield container
    await container.close()


async def test_sqlite_archive_verify_and_rebuild(iso: Container) -> None:
    await append_all(iso.redis, 1, realistic_events(1500, seed=51))
    assert await project_pending(iso) == 1500
    async with iso.engine.connect() as conn:
        positions = list((await conn.execute(sa.select(events.c.position))).scalars())
    assert sorted(positions) == list(range(1, 1501))
    assert (await verify(iso)).differences == {}

    async with iso.engine.begin() as conn:
        await conn.execute(stats_totals.update().values(watched_ms=stats_totals.c.watched_ms + 1))
    assert list((await verify(iso)).differences) == ["stats"]

    report = await rebuild(iso, ["stats"])
    assert report.events == 1500
    assert (await verify(iso)).differences == {}
