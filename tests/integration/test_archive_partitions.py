"""The Postgres archive is range-partitioned by position (migration 0011,
``adapters.archive_partitions``): the migration converts an existing archive in place and
back, partitions are made ahead of need (the periodic job, and the writer when the job has
not run), readers go through partitions in position order, and retention drops a partition
wholly past its horizon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from projector_env import Stack, isolated_stack

from adapters.archive_partitions import (
    Partition,
    drop_partition,
    ensure_partitions,
    forget_room,
    is_partitioned,
    partitions,
)
from adapters.container import Container
from adapters.settings import Settings
from bench.workload import append_all
from domain.events import AnyEvent, DayShare, ProgressSaved, SessionEnded, SessionStarted
from medio.migrate import alembic_config, upgrade
from projections.archive_pages import read_page
from projections.archive_reader import ArchiveChunks
from projections.registry import SQL_PROJECTIONS
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from projections.stats import StatsProjection
from services.container import build_container
from services.retention import apply_retention
from workers.partitions import ensure_archive_partitions

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)
SIZE = 1000  # positions per partition in these tests
SQL_NAMES = [cls.name for cls in SQL_PROJECTIONS if cls.name != "archive"]


def _saves(count: int, at: datetime, who: str = "user_parts") -> list[tuple[str, AnyEvent]]:
    return [
        (
            who,
            ProgressSaved(
                occurred_at=at + timedelta(seconds=i),
                actor=who,
                clerk_id=who,
                tmdb_id=str(i),
                current_time=float(i),
            ),
        )
        for i in range(count)
    ]


def _session(session_id: int, at: datetime) -> list[tuple[str, AnyEvent]]:
    common = {"session_id": session_id, "profile_id": 9, "video_id": 90}
    day = at.date().isoformat()
    started = SessionStarted(
        occurred_at=at, actor="user_parts", user_id=1, timezone="UTC", local_date=day, **common
    )
    ended = SessionEnded(
        occurred_at=at + timedelta(seconds=90),
        actor="user_parts",
        reason="ended",
        started_at=at,
        ended_at=at + timedelta(seconds=90),
        shares=(DayShare(day, 90.0),),
        watched_seconds=90.0,
        **common,
    )
    return [("9", started), ("9", ended)]


@pytest.fixture
def stack(settings: Settings) -> Iterator[Stack]:
    forget_room()
    with isolated_stack(retention_days=40, archive_partition_size=SIZE) as own:
        yield own
    forget_room()


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[Container]:
    container = build_container(stack.settings)
    yield container
    await container.close()


async def _rows(store: Container) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.text("SELECT * FROM events ORDER BY position"))
        return [tuple(row) for row in result]


async def _homes(store: Container) -> dict[int, str]:
    """Each row's position and the partition (table) holding it."""
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.text("SELECT position, tableoid::regclass::text FROM events")
        )
        return {int(position): str(table) for position, table in result}


async def _parts(store: Container) -> list[Partition]:
    async with store.engine.connect() as conn:
        return await partitions(conn)


async def _copy_in(store: Container, first: int, count: int) -> None:
    """``count`` plain archive rows from position ``first`` (as an older Medio archived them)."""
    rows = [
        {
            "position": p,
            "shard": 0,
            "stream_id": f"1-{p}",
            "type": "privacy.retention_applied",
            "version": 1,
            "occurred_at": OLD + timedelta(seconds=p),
            "actor": "system:test",
            "data": f'{{"n": {p}}}',
            "key_id": None,
        }
        for p in range(first, first + count)
    ]
    async with store.engine.begin() as conn:
        await conn.execute(sa.table("events", *[sa.column(k) for k in rows[0]]).insert(), rows)


def _alembic(stack: Stack, verb: str, revision: str) -> None:
    getattr(command, verb)(alembic_config(stack.settings), revision)


async def test_migration_converts_an_archive_in_place_and_back(
    stack: Stack, store: Container
) -> None:
    await asyncio.to_thread(_alembic, stack, "downgrade", "0010")
    async with store.engine.connect() as conn:
        assert not await is_partitioned(conn)
    await _copy_in(store, 1, 2500)
    before = await _rows(store)

    await asyncio.to_thread(upgrade, stack.settings)
    forget_room()
    async with store.engine.connect() as conn:
        assert await is_partitioned(conn)
        indexes = set(
            (
                await conn.execute(
                    sa.text("SELECT indexname FROM pg_indexes WHERE tablename='events'")
                )
            )
            .scalars()
            .all()
        )
        primary = await conn.scalar(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'events'::regclass AND contype = 'p'"
            )
        )
    assert indexes == {"events_pkey", "ix_events_type_position", "ix_events_occurred_at"}
    assert primary == 'PRIMARY KEY ("position")'
    assert [(p.lower, p.upper) for p in await _parts(store)] == [
        (0, 1000), (1000, 2000), (2000, 3000), (3000, 4000), (4000, 5000)
    ]  # fmt: skip
    assert await _rows(store) == before  # same rows, same positions
    homes = await _homes(store)
    assert {homes[1], homes[999], homes[1000], homes[2500]} == {
        "events_p0", "events_p1000", "events_p2000"
    }  # fmt: skip
    assert homes[999] == "events_p0" and homes[1000] == "events_p1000"

    # (shard, stream_id) stays unique within a partition
    with pytest.raises(sa.exc.IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO events SELECT 2600, shard, stream_id, type, version, "
                    "occurred_at, actor, data, key_id FROM events WHERE position = 2401"
                )
            )

    # new appends, through the live pipeline, follow on and land in their partitions
    await append_all(store.redis, store.settings.stream_shards, _saves(700, NOW))
    await project_pending(store)
    homes = await _homes(store)
    assert sorted(homes) == list(range(1, 3201))
    assert all(table == f"events_p{p // SIZE * SIZE}" for p, table in homes.items())

    after = await _rows(store)
    await asyncio.to_thread(_alembic, stack, "downgrade", "0010")
    async with store.engine.connect() as conn:
        assert not await is_partitioned(conn)
        unique = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_events_shard_stream_id'"
            )
        )
    assert unique == 1
    assert await _rows(store) == after


async def test_the_job_keeps_partitions_ahead_and_the_writer_never_lacks_one(
    stack: Stack, store: Container
) -> None:
    assert [(p.lower, p.upper) for p in await _parts(store)] == [
        (0, 1000), (1000, 2000), (2000, 3000)
    ]  # fmt: skip  # made at migration time: the one being filled and two ahead
    assert await ensure_archive_partitions(stack.settings) == []
    await _copy_in(store, 1, 1500)
    assert await ensure_archive_partitions(stack.settings) == ["events_p3000"]
    assert await ensure_archive_partitions(stack.settings) == []

    # the job has not run for long: the partitions past the newest row are gone
    for partition in (await _parts(store))[2:]:
        async with store.engine.begin() as conn:
            await drop_partition(conn, partition)
    await _copy_in(store, 1501, 499)  # the last partition is full
    forget_room()
    await append_all(store.redis, store.settings.stream_shards, _saves(20, NOW))
    await project_pending(store)  # the writer makes the partition itself
    homes = await _homes(store)
    assert sorted(homes) == list(range(1, 2020))
    assert {homes[p] for p in range(2000, 2020)} == {"events_p2000"}
    ahead = [p for p in await _parts(store) if p.lower > 2019]
    assert len(ahead) == 2  # and the two ahead it keeps
    assert await ensure_archive_partitions(stack.settings) == []


async def test_readers_go_through_partitions_in_position_order(
    stack: Stack, store: Container
) -> None:
    await append_all(store.redis, store.settings.stream_shards, _saves(2300, NOW))
    await project_pending(store)
    async with store.engine.begin() as conn:
        await ensure_partitions(conn, SIZE, 2)

    seen: list[int] = []
    async with store.engine.connect() as conn:
        after = 0
        while page := await read_page(conn, store.keyring, after, 170):
            seen += [event.position for event in page]
            after = page[-1].position
    assert seen == list(range(1, 2301))  # the feed's pages, across two boundaries

    replayed = 0
    async with ArchiveChunks(store.engine, store.keyring, chunk=400) as chunks:
        async for _batch, read in chunks:
            replayed += read
    assert replayed == 2300
    assert (await verify(store)).differences == {}

    # The plan: partitions below ``after`` pruned, the rest read one after another (an
    # ordered Append, no Sort and no Merge Append), with a constant and with a parameter.
    query = "SELECT position FROM events WHERE position > {} ORDER BY position LIMIT 100"
    async with store.engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE events"))
        plan = "\n".join((await conn.execute(sa.text("EXPLAIN " + query.format(1500)))).scalars())
        await conn.execute(sa.text("SET plan_cache_mode = force_generic_plan"))
        await conn.execute(sa.text(f"PREPARE page(bigint) AS {query.format('$1')}"))
        generic = (await conn.execute(sa.text("EXPLAIN (ANALYZE) EXECUTE page(1500)"))).scalars()
        generic_plan = "\n".join(generic)
    assert "Append" in plan and "Merge Append" not in plan and "Sort" not in plan
    assert "events_p0" not in plan and "events_p1000" in plan and "events_p2000" in plan
    assert "Merge Append" not in generic_plan and "Sort" not in generic_plan
    assert "Subplans Removed: 1" in generic_plan  # events_p0, pruned when executed
    # the page's 100 rows came from events_p1000 alone; the next partition was never opened
    p2000 = next(line for line in generic_plan.splitlines() if "on events_p2000" in line)
    assert "(never executed)" in p2000


async def _stats(store: Container) -> dict[str, Any]:
    async with store.engine.connect() as conn:
        return await StatsProjection().dump(conn)


async def test_retention_drops_a_partition_wholly_past_the_horizon(
    stack: Stack, store: Container
) -> None:
    old = [item for sid in range(1, 301) for item in _session(sid, OLD + timedelta(minutes=sid))]
    history = [*old, *_saves(500, OLD), *_session(900, NOW - timedelta(hours=1))]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    assert len(await _homes(store)) == 1102
    before = await _stats(store)

    shredded = await apply_retention(store)
    await project_pending(store)

    assert shredded == 1100
    parts = [p.name for p in await _parts(store)]
    assert "events_p0" not in parts and "events_p1000" in parts  # p1000 holds today's session
    homes = await _homes(store)
    assert min(homes) == 1000 and max(homes) > 1102  # the carried stats and the run's record
    assert await _stats(store) == before
    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 10)
    assert page[0].position == 1000  # the feed starts after the gap
    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _stats(store) == before
    assert await apply_retention(store) == 0
    assert "events_p1000" in [p.name for p in await _parts(store)]


async def test_a_partition_readers_hold_is_shredded_instead(stack: Stack, store: Container) -> None:
    """Dropping waits at most 5 s for readers; then the run shreds the partition's rows as
    without partitions, and the stats and a replay are the same either way."""
    old = [item for sid in range(1, 301) for item in _session(sid, OLD + timedelta(minutes=sid))]
    history = [*old, *_saves(500, OLD), *_session(900, NOW - timedelta(hours=1))]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    before = await _stats(store)

    async with store.engine.connect() as reader:
        await reader.execute(sa.text("SELECT count(*) FROM events_p0"))  # held until the end
        assert await apply_retention(store) == 1100
        await reader.rollback()
    await project_pending(store)
    assert "events_p0" in [p.name for p in await _parts(store)]
    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 999)
    assert len(page) == 999 and all(e.erased for e in page)
    assert await _stats(store) == before
    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _stats(store) == before


async def test_retention_keeps_a_partition_a_replay_still_needs(
    stack: Stack, store: Container
) -> None:
    running = _session(1, OLD)[:1]  # started before the horizon, never ended
    history = [*running, *_saves(1200, OLD), *_session(2, NOW - timedelta(hours=1))]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)

    assert await apply_retention(store) == 1200
    assert [p.name for p in await _parts(store)][:2] == ["events_p0", "events_p1000"]
    assert (await verify(store)).differences == {}


class _Later:
    """A clock ``days`` ahead of the wall clock."""

    def __init__(self, days: int) -> None:
        self.days = days

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.days)


async def test_carried_stats_in_an_old_partition_are_carried_again_before_it_goes(
    stack: Stack, store: Container
) -> None:
    old = [item for sid in range(1, 301) for item in _session(sid, OLD + timedelta(minutes=sid))]
    await append_all(store.redis, store.settings.stream_shards, [*old, *_saves(500, OLD)])
    await project_pending(store)
    before = await _stats(store)
    assert await apply_retention(store) == 1100  # drops events_p0; carries stats to 1101
    await project_pending(store)
    homes = await _homes(store)
    assert min(homes) == 1000 and max(homes) == 1102  # stats.carried, then the run's record
    await _copy_in(store, 1103, 900)  # records no projection reads: events_p1000 is full

    later = build_container(stack.settings, clock=_Later(100))
    try:
        assert await apply_retention(later) == 0  # nothing left to shred, one partition to drop
    finally:
        await later.close()
    parts = [p.name for p in await _parts(store)]
    assert "events_p1000" not in parts
    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 10)
    assert [(e.position, e.type) for e in page] == [
        (2000, "privacy.retention_applied"),
        (2001, "privacy.retention_applied"),
        (2002, "privacy.retention_applied"),
        (2003, "stats.carried"),  # carried again, at the head of the archive
    ]
    assert await _stats(store) == before
    # The SQL read models; the old day's Redis counter, live, would have expired long ago
    # in real time (only this container's clock is 100 days on), and a replay makes none.
    assert (await verify(store, SQL_NAMES)).differences == {}
    await rebuild(store, SQL_NAMES)
    assert await _stats(store) == before


@pytest.fixture
def sqlite_stack(settings: Settings, tmp_path: Any) -> Iterator[Stack]:
    with isolated_stack(sqlite_dir=str(tmp_path), retention_days=40) as own:
        yield own


async def test_sqlite_keeps_one_plain_table(sqlite_stack: Stack) -> None:
    """``medio dev``'s default: no partitions, the job and the writer's check do nothing, and
    retention shreds in place as before."""
    own = sqlite_stack
    store = build_container(own.settings)
    try:
        await append_all(store.redis, 1, [*_saves(30, OLD), *_saves(5, NOW, "user_new")])
        await project_pending(store)
        async with store.engine.begin() as conn:
            assert not await is_partitioned(conn)
            assert await partitions(conn) == []
            assert await ensure_partitions(conn, SIZE, 2) == []
        assert await ensure_archive_partitions(own.settings) == []
        assert await apply_retention(store) == 30
        async with store.engine.connect() as conn:
            page = await read_page(conn, store.keyring, 0, 100)
        assert [e.position for e in page][:35] == list(range(1, 36))  # all kept, in place
        assert sum(e.erased for e in page) == 30
    finally:
        await store.close()
