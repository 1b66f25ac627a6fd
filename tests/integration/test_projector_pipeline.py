"""The pipelined projector (the runtime's): batches overlap, effects stay exactly once, in order.

While one batch's SQL side commits, the previous batch's Redis side runs and the next batch is
read. A Redis side that fails, for good (one bad event) or for now (Redis away), must leave
every event applied once, in stream order, on both sides, and nothing pending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from faults import FailingCall
from projector_env import Stack, isolated_stack
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from adapters.tables import events, projection_checkpoints
from domain.events import ProgressSaved
from projections import apply as apply_module
from projections.apply import FenceBroken, ProjectionSet
from projections.archive import Archive
from projections.base import Commands, Envelope, RedisProjection
from projections.projector import ShardProjector
from projections.recovery import ensure_current
from projections.runtime import project_pending
from projections.streams import DEAD_LETTER_STREAM, GROUP
from services.container import build_container

BATCH = 8
TITLES_KEY = "test:titles"


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack(projector_batch_size=BATCH) as built:
        yield built


@pytest.fixture
async def iso(stack: Stack) -> AsyncIterator[Container]:
    container = build_container(msgspec.structs.replace(stack.settings))
    claim = await container.redis.get("medio:test-run")
    await container.redis.flushdb()
    await container.redis.set("medio:test-run", claim or "projector", ex=3600)
    async with container.engine.begin() as conn:
        await conn.execute(events.delete())
        await conn.execute(projection_checkpoints.delete())
    await ensure_current(container)  # both stores emptied: nothing is behind
    yield container
    await container.close()


class _TitleLog(RedisProjection):
    """Appends each saved title to a list; refuses titles named "poison" like a bug would."""

    name = "title_log"
    handles = frozenset({"progress.saved"})

    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        titles = []
        for envelope in batch:
            assert isinstance(envelope.event, ProgressSaved)
            if envelope.event.tmdb_id == "poison":
                raise ValueError("cannot project a poison title")
            titles.append(envelope.event.tmdb_id)
        commands.append(("RPUSH", self.key(TITLES_KEY), *titles))

    async def dump(self, redis: Redis) -> dict[str, Any]:
        return {"titles": await redis.lrange(self.key(TITLES_KEY), 0, -1)}

    async def clear(self, redis: Redis) -> None:
        await redis.delete(self.key(TITLES_KEY))


async def _append(container: Container, titles: list[str]) -> list[str]:
    ids = []
    for title in titles:
        event = ProgressSaved(
            occurred_at=datetime.now(UTC), actor="u", clerk_id="u", tmdb_id=title, current_time=1.0
        )
        ids.append(await container.events.append("u", event))
    return ids


async def _archived(container: Container) -> list[str]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(sa.select(events.c.stream_id).order_by(events.c.position))
        return [row.stream_id for row in rows]


async def _logged(container: Container) -> list[str]:
    return [t.decode() for t in await container.redis.lrange(TITLES_KEY, 0, -1)]


async def _pending(redis: Redis) -> int:
    return int((await redis.xpending(stream_name(0), GROUP))["pending"])


async def test_event_failing_on_the_redis_side_is_isolated_while_later_batches_go_on(
    iso: Container,
) -> None:
    titles = [str(i) for i in range(5 * BATCH)]
    titles[BATCH + 3] = "poison"  # in the second batch, while the third one's SQL side runs
    ids = await _append(iso, titles)
    projections = ProjectionSet(sql=[Archive()], redis=[_TitleLog()])
    assert await project_pending(iso, projections=projections) == len(titles)
    assert await _logged(iso) == [t for t in titles if t != "poison"]
    assert await _archived(iso) == ids  # the SQL side had committed it before Redis refused
    dead = await iso.redis.xrange(DEAD_LETTER_STREAM)
    assert [f[b"stream_id"].decode() for _, f in dead] == [ids[BATCH + 3]]
    assert b"title_log: ValueError" in dead[0][1][b"reason"]
    assert await _pending(iso.redis) == 0


async def test_redis_side_lost_in_flight_is_applied_once_after_the_later_sql_side_committed(
    iso: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles = [str(i) for i in range(5 * BATCH)]
    ids = await _append(iso, titles)
    lost = RedisConnectionError("Redis went away during the second batch's script")
    run_batch = FailingCall(apply_module.run_batch, 2, lost)
    monkeypatch.setattr(apply_module, "run_batch", run_batch)
    projections = ProjectionSet(sql=[Archive()], redis=[_TitleLog()])
    assert await project_pending(iso, projections=projections) == len(titles)
    assert run_batch.calls > 2
    assert await _logged(iso) == titles
    assert await _archived(iso) == ids
    assert await _pending(iso.redis) == 0


async def test_a_batch_that_would_pass_over_an_earlier_entry_is_refused(iso: Container) -> None:
    """A commit must start at the checkpoint's next entry: a batch read past one of our own
    pending batches (a read-ahead that moved the cursor after a rewind once did this) would
    move the checkpoint over it and the skipped entries would never be projected."""
    ids = await _append(iso, [str(i) for i in range(2 * BATCH)])
    projections = ProjectionSet(sql=[Archive()], redis=[])
    reader = ShardProjector(iso.redis, iso.engine, 0, projections, "reader", batch_size=BATCH)
    await reader.start()
    first, second = await reader.read(None), await reader.read(None)
    assert [e.stream_id for e in first + second] == ids
    async with iso.engine.connect() as conn:
        with pytest.raises(FenceBroken, match="lies between the checkpoint and the batch"):
            await projections.commit(conn, iso.redis, 0, second, "reader")
        await conn.rollback()
        assert await _archived(iso) == []
        await projections.commit(conn, iso.redis, 0, first, "reader")
        await projections.commit(conn, iso.redis, 0, second, "reader")
    assert await _archived(iso) == ids
    await reader.close()
