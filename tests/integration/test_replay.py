"""``medio replay``: rebuild from the archive and swap in; ``--verify`` reports differences."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from projector_env import Stack

from adapters.container import Container
from adapters.tables import events, projection_checkpoints, stats_daily
from bench.workload import append_all, realistic_events
from projections import replay
from projections.replay import rebuild, replayable, verify
from projections.resume import ResumeProjection
from projections.runtime import project_pending


async def _daily_rows(container: Container) -> int:
    async with container.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(stats_daily)
        return int((await conn.execute(query)).scalar())


async def _corrupt(container: Container) -> str:
    """Lose stats rows and overwrite one resume position; returns the overwritten key."""
    async with container.engine.begin() as conn:
        await conn.execute(stats_daily.delete())
    state = await ResumeProjection().dump(container.redis)
    key = next(k for k in state if k.startswith("resume:"))
    await container.redis.set(key, '{"currentTime":-1}', keepttl=True)
    return key


async def test_rebuild_restores_damaged_projections_and_projects_the_tail(
    iso: Container,
) -> None:
    await append_all(iso.redis, 1, realistic_events(3000, seed=41))
    await project_pending(iso)
    healthy_rows = await _daily_rows(iso)
    damaged_key = await _corrupt(iso)
    await append_all(iso.redis, 1, realistic_events(500, seed=42))  # not projected yet

    report = await rebuild(iso)

    assert report.events == 3000  # the archive; the 500 of the tail came after
    assert report.projections == replayable()
    assert await _daily_rows(iso) >= healthy_rows
    assert await iso.redis.get(damaged_key) != b'{"currentTime":-1}'
    async with iso.engine.connect() as conn:
        archived = (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar()
        positions = set(
            (await conn.execute(sa.select(projection_checkpoints.c.position))).scalars()
        )
    assert archived == 3500  # the tail was projected before the pause ended
    assert len(positions) == 1  # every projection at the same place
    assert (await verify(iso)).differences == {}
    assert not await iso.redis.keys("medio:rebuild:*")  # scratch storage is gone
    async with iso.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    assert not [name for name in tables if name.endswith("__rebuild")]


async def test_verify_command_reports_differences_with_exit_code_1(
    iso: Container, stack: Stack
) -> None:
    await append_all(iso.redis, 1, realistic_events(1000, seed=43))
    await project_pending(iso)
    assert (await verify(iso)).differences == {}
    damaged_key = await _corrupt(iso)

    checked = subprocess.run(
        [sys.executable, "-m", "medio.cli", "replay", "--verify"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert checked.returncode == 1, checked.stderr
    assert "stats differs from its rebuild" in checked.stderr
    assert "resume differs from its rebuild" in checked.stderr
    assert damaged_key in checked.stderr
    report = await verify(iso, ["stats"])
    assert list(report.differences) == ["stats"]
    await rebuild(iso, ["stats", "resume"])
    assert (await verify(iso)).differences == {}


def test_unknown_or_archive_projection_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown projection 'nope'"):
        replayable(["nope"])
    with pytest.raises(ValueError, match="archive is what replay reads"):
        replayable(["archive"])


async def test_rebuild_that_cannot_make_its_tables_leaves_live_redis_state_alone(
    iso: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append_all(iso.redis, 1, realistic_events(500, seed=44))
    await project_pending(iso)
    live = await ResumeProjection().dump(iso.redis)
    assert live

    async def refused(*_args: object) -> None:
        raise RuntimeError("no room for scratch tables")

    monkeypatch.setattr(replay, "_create_scratch", refused)
    with pytest.raises(RuntimeError, match="no room"):
        await rebuild(iso)

    assert await ResumeProjection().dump(iso.redis) == live
