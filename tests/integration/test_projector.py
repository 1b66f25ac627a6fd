"""The projector on real Redis and Postgres, in stores of its own (see ``projector_env``).

Every appended event reaches the archive and every projection exactly once, in per-key order;
redelivery, undecodable or failing events and a dead consumer change none of that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from projector_env import Stack, isolated_stack, projection_snapshot
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.container import Container
from adapters.eventlog import entry_fields, stream_name
from adapters.settings import Settings
from adapters.tables import events, projection_checkpoints
from bench.workload import append_all, realistic_events
from domain.events import ProgressSaved
from projections import apply as apply_module
from projections import locks
from projections.apply import ProjectionSet
from projections.archive import Archive
from projections.base import Envelope, SqlProjection, stream_id_key
from projections.checkpoints import redis_checkpoint_key
from projections.lag import projection_lag
from projections.locks import ShardLock, lock_key
from projections.projector import ShardProjector
from projections.recovery import ensure_current
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.replay import rebuild, verify
from projections.runtime import project_pending, registered_projections, run_projector
from projections.streams import DEAD_LETTER_STREAM, GROUP, to_entry
from services.container import build_container

SHARDS = 2


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack(stream_shards=SHARDS, projector_lock_ttl_seconds=1.0) as built:
        yield built


@pytest.fixture
async def iso(stack: Stack) -> AsyncIterator[Container]:
    """A container on the isolated stores, emptied before each test."""
    container = build_container(stack.settings)
    claim = await container.redis.get("medio:test-run")
    await container.redis.flushdb()
    await container.redis.set("medio:test-run", claim or "projector", ex=3600)
    async with container.engine.begin() as conn:
        for table in _projection_tables():
            await conn.execute(table.delete())
    await ensure_current(container)  # both stores emptied: nothing is behind
    yield container
    await container.close()


def _projection_tables() -> list[sa.Table]:
    tables = [t for cls in SQL_PROJECTIONS for t in cls.live_tables]
    return [*tables, projection_checkpoints]


async def _archived(container: Container) -> list[tuple[int, int, str]]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(events.c.position, events.c.shard, events.c.stream_id).order_by(
                events.c.position
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def _pending(redis: Redis, shard: int) -> int:
    return int((await redis.xpending(stream_name(shard), GROUP))["pending"])


async def test_every_event_is_archived_once_in_stream_order_and_matches_replay(
    iso: Container,
) -> None:
    ids = await append_all(iso.redis, SHARDS, realistic_events(3000, seed=1))
    assert await project_pending(iso) == 3000
    archived = await _archived(iso)
    assert [position for position, _, _ in archived] == list(range(1, 3001))
    assert sorted(stream_id for _, _, stream_id in archived) == sorted(ids)
    for shard in range(SHARDS):
        in_shard = [stream_id_key(s) for _, sh, s in archived if sh == shard]
        assert in_shard == sorted(in_shard)
        assert await _pending(iso.redis, shard) == 0
    assert (await verify(iso)).differences == {}


async def test_redelivered_batch_changes_nothing(
    iso: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    await append_all(iso.redis, SHARDS, realistic_events(1500, seed=2))

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RedisConnectionError("died after the SQL commit")

    with monkeypatch.context() as patch:  # SQL commits; Redis effects and ack never happen
        patch.setattr(apply_module, "run_batch", crash)
        for shard in range(SHARDS):
            first = ShardProjector(
                iso.redis, iso.engine, shard, registered_projections(), "crashed", 500
            )
            await first.start()
            assert await first.step(block_ms=None) == 0
    assert len(await _archived(iso)) == 2 * 500  # committed, then the worker "died"
    delivered = {
        shard: [to_entry(shard, i, f) for i, f in await iso.redis.xrange(stream_name(shard))]
        for shard in range(SHARDS)
    }
    assert await project_pending(iso) == 1500  # redelivered: SQL skips them, Redis applies
    assert len(await _archived(iso)) == 1500
    projected = await projection_snapshot(iso)
    for shard, entries in delivered.items():  # every entry once more, all already applied
        for start in range(0, len(entries), 500):
            batch = entries[start : start + 500]
            await registered_projections().commit(iso.engine, iso.redis, shard, batch, "x")
    assert await projection_snapshot(iso) == projected
    assert (await verify(iso)).differences == {}


async def test_undecodable_entries_are_dead_lettered_and_the_shard_goes_on(
    iso: Container,
) -> None:
    good = ProgressSaved(
        occurred_at=datetime.now(UTC), actor="u1", clerk_id="u1", tmdb_id="7", current_time=12.0
    )
    stream = stream_name(0)
    first = await iso.redis.xadd(stream, entry_fields(good))  # type: ignore[arg-type]
    bad_json = await iso.redis.xadd(stream, {"t": "progress.saved", "v": 2, "d": b"{oops"})
    unknown = await iso.redis.xadd(stream, {"t": "video.rated", "v": 1, "d": b"{}"})
    last = await iso.redis.xadd(stream, entry_fields(good))  # type: ignore[arg-type]
    assert await project_pending(iso) == 2
    dead = await iso.redis.xrange(DEAD_LETTER_STREAM)
    assert [fields[b"stream_id"] for _, fields in dead] == [bad_json, unknown]
    assert dead[0][1][b"d"] == b"{oops"
    assert b"unknown event type" in dead[1][1][b"reason"]
    assert [s for _, _, s in await _archived(iso)] == [first.decode(), last.decode()]
    assert await _pending(iso.redis, 0) == 0
    assert await iso.redis.get(redis_checkpoint_key("resume", 0)) == last


class _Picky(SqlProjection):
    """Fails on titles named "poison" the way a projection bug would."""

    name = "picky"
    handles = frozenset({"progress.saved"})
    seen: ClassVar[list[str]] = []

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            assert isinstance(envelope.event, ProgressSaved)
            if envelope.event.tmdb_id == "poison":
                raise ValueError("cannot project a poison title")
        _Picky.seen.extend(e.stream_id for e in batch)


async def test_event_failing_in_apply_is_isolated_dead_lettered_and_the_rest_applied_in_order(
    iso: Container,
) -> None:
    titles = [str(i) for i in range(40)]
    titles[23] = "poison"
    ids = []
    for title in titles:
        event = ProgressSaved(
            occurred_at=datetime.now(UTC),
            actor="u2",
            clerk_id="u2",
            tmdb_id=title,
            current_time=1.0,
        )
        ids.append(await iso.events.append("u2", event))
    _Picky.seen.clear()
    projections = ProjectionSet(sql=[Archive(), _Picky()], redis=[])
    assert await project_pending(iso, projections=projections) == 40
    expected = ids[:23] + ids[24:]
    assert _Picky.seen == expected
    assert [s for _, _, s in await _archived(iso)] == expected  # one transaction per batch
    dead = await iso.redis.xrange(DEAD_LETTER_STREAM)
    assert [f[b"stream_id"].decode() for _, f in dead] == [ids[23]]
    assert b"picky: ValueError: cannot project a poison title" in dead[0][1][b"reason"]
    assert await _pending(iso.redis, 0) == 0


async def test_dead_consumers_lock_expires_and_a_new_projector_claims_its_pending_entries(
    iso: Container,
) -> None:
    ids = await append_all(iso.redis, 1, realistic_events(800, seed=3))  # all on shard 0
    dead = ShardLock(iso.redis, 0, ttl_seconds=1.0, owner="dead-worker")
    assert await dead.acquire()
    victim = ShardProjector(iso.redis, iso.engine, 0, registered_projections(), "dead-worker")
    await victim.start()
    assert len(await victim.read(block_ms=None)) == 500  # read, then the worker "died"
    assert await _pending(iso.redis, 0) == 500
    assert await run_projector(iso, 0, seconds=0.5) is None  # still locked: leave it alone
    await asyncio.sleep(1.1)  # the TTL of a lock nobody renews
    assert await run_projector(iso, 0, seconds=1.5, consumer="successor") == 800
    assert await _pending(iso.redis, 0) == 0
    consumers = await iso.redis.xinfo_consumers(stream_name(0), GROUP)
    assert all(c["pending"] == 0 for c in consumers)
    assert sorted(s for _, _, s in await _archived(iso)) == sorted(ids)


async def test_a_run_asked_to_stop_ends_after_its_step_and_releases_the_shard(
    iso: Container,
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    run = asyncio.create_task(
        run_projector(iso, 0, seconds=30, stopping=stopping.is_set, hand_over=True)
    )
    await asyncio.sleep(0.3)
    stopping.set()  # the worker got SIGTERM (Ctrl-C on medio dev) or gives the shard up
    assert await asyncio.wait_for(run, timeout=5) == 0
    assert loop.time() - started < 2.5  # one blocking read (<= 1 s) past the stop, not 30 s
    assert await ShardLock(iso.redis, 0, ttl_seconds=1.0, owner="next").acquire()  # released


async def test_a_run_that_ends_on_its_time_hands_the_shard_to_the_next_run_of_its_token(
    iso: Container,
) -> None:
    await append_all(iso.redis, 1, realistic_events(300, seed=6))
    assert await run_projector(iso, 0, seconds=0.5, consumer="job-1", hand_over=True) == 300
    assert await iso.redis.get(lock_key(0)) == b"job-1"  # kept for the next job
    assert not await ShardLock(iso.redis, 0, ttl_seconds=1.0, owner="other").acquire()
    await append_all(iso.redis, 1, realistic_events(200, seed=7))
    assert await run_projector(iso, 0, seconds=0.5, consumer="job-1", adopt=True) == 200
    assert await iso.redis.get(lock_key(0)) is None  # no hand_over: released
    # a token that let go never takes the shard again by adopting it
    assert await run_projector(iso, 0, seconds=0.5, consumer="job-1", adopt=True) is None


async def test_a_run_waiting_for_the_lock_gives_up_when_asked_to_stop(iso: Container) -> None:
    holder = ShardLock(iso.redis, 0, ttl_seconds=5.0, owner="holder")
    assert await holder.acquire()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(run_projector(iso, 0, wait_seconds=30, stopping=stopping.is_set))
    await asyncio.sleep(0.3)
    stopping.set()
    started = loop.time()
    assert await asyncio.wait_for(waiter, timeout=5) is None
    assert loop.time() - started < 1.5  # not the 30 s it was ready to wait


async def test_a_waiting_successor_takes_the_shard_as_soon_as_it_is_released(
    iso: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "RECHECK_SECONDS", 30.0)  # only the release can wake it in time
    holder = ShardLock(iso.redis, 0, ttl_seconds=10.0, owner="holder")
    assert await holder.acquire()
    successor = ShardLock(iso.redis, 0, ttl_seconds=10.0, owner="successor")
    waiting = asyncio.create_task(successor.wait_acquire(timeout=20.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await holder.release()
    assert await asyncio.wait_for(waiting, 2.0)
    assert await iso.redis.get(lock_key(0)) == b"successor"


async def test_a_waiting_successor_takes_the_shard_of_a_holder_that_died(iso: Container) -> None:
    dead = ShardLock(iso.redis, 0, ttl_seconds=0.3, owner="dead-worker")  # never released
    assert await dead.acquire()
    successor = ShardLock(iso.redis, 0, ttl_seconds=1.0, owner="successor")
    assert await successor.wait_acquire(timeout=2.0)
    assert await iso.redis.get(lock_key(0)) == b"successor"


async def test_stream_is_trimmed_only_below_what_every_projection_has_passed(
    iso: Container,
) -> None:
    ids = await append_all(iso.redis, 1, realistic_events(2000, seed=4))
    archive_only = ProjectionSet(sql=[Archive()], redis=[])
    assert await project_pending(iso, projections=archive_only) == 2000
    assert await iso.redis.xlen(stream_name(0)) == 2000  # the Redis projections are at 0-0
    await rebuild(iso)  # they catch up from the archive, at the archive's checkpoint
    assert set((await _checkpoints(iso)).values()) == {ids[-1]}
    await append_all(iso.redis, 1, realistic_events(1, seed=5))
    assert await project_pending(iso) == 1
    remaining = [raw.decode() for raw, _ in await iso.redis.xrange(stream_name(0))]
    assert len(remaining) < 2001
    assert remaining == (ids + remaining[-1:])[-len(remaining) :]  # only the oldest are gone
    assert (await verify(iso)).differences == {}


async def _checkpoints(container: Container) -> dict[str, str]:
    """Every projection's position in shard 0."""
    async with container.engine.connect() as conn:
        table = projection_checkpoints
        rows = await conn.execute(
            sa.select(table.c.projection, table.c.position).where(table.c.shard == 0)
        )
        found = {name: position for name, position in rows}
    for cls in REDIS_PROJECTIONS:
        value = await container.redis.get(redis_checkpoint_key(cls.name, 0))
        found[cls.name] = value.decode() if value else "0-0"
    return found


async def test_lag_counts_unapplied_entries_per_shard_and_projection(iso: Container) -> None:
    ids = await append_all(iso.redis, SHARDS, realistic_events(300, seed=6))
    lag = await projection_lag(iso.redis, iso.engine, SHARDS)
    assert set(lag) == set(_all_names())
    for name in _all_names():
        assert sum(lag[name][str(shard)].behind for shard in range(SHARDS)) == len(ids)
        assert all(lag[name][str(s)].oldest_ms >= 0 for s in range(SHARDS))
    await project_pending(iso)
    lag = await projection_lag(iso.redis, iso.engine, SHARDS)
    assert {(s.behind, s.oldest_ms) for shards in lag.values() for s in shards.values()} == {(0, 0)}


async def test_ready_shows_projection_lag(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    archive = response.json()["projections"]["archive"]["0"]
    assert set(archive) == {"checkpoint", "behind", "capped", "oldest_ms"}


def _all_names() -> list[str]:
    return [c.name for c in SQL_PROJECTIONS] + [c.name for c in REDIS_PROJECTIONS]
