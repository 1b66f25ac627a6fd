"""Exactly-once effects on at-least-once delivery: one commit per batch and side.

For a run of consecutive entries of one shard:

1. one SQL transaction locks the SQL checkpoints, writes every SQL projection's rows for the
   entries after its checkpoint (the archive among them) and moves the checkpoints;
2. one Redis ``MULTI``, with the Redis checkpoint keys watched, queues every Redis
   projection's commands and moves their checkpoint keys;

and the entries are acked only after both (the ``XACK`` rides in the Redis side's script).
``commit`` does both; a pipelined projector calls ``commit_sql`` and ``commit_redis`` itself,
running one batch's SQL side while the previous batch's Redis side runs. Each side first
checks a fence: no entry between its checkpoint and the end of the batch is pending at another
consumer. A projector that lost its lock (or two that race) can therefore never move a
checkpoint past entries it does not hold, and a redelivered entry at or below a checkpoint is
skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.eventlog import stream_name
from projections.base import Envelope, RedisProjection, SqlProjection, stream_id_key
from projections.checkpoints import (
    ZERO,
    lock_sql_checkpoints,
    redis_checkpoint_key,
    write_sql_checkpoints,
)
from projections.redis_batch import recorded, recorder, run_batch
from projections.redis_commands import text
from projections.streams import GROUP, Entry, fence_problem

MAX_CAS_RETRIES = 20

log = logging.getLogger(__name__)


class ProjectionFailed(Exception):
    """A projection could not apply some entries for a reason a retry will not fix."""

    def __init__(self, projection: str, cause: BaseException) -> None:
        super().__init__(f"{projection}: {type(cause).__name__}: {cause}")
        self.projection = projection


class FenceBroken(Exception):
    """Entries before the end of the batch are pending at another consumer: claim them first."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the store being unavailable (retry later), not a bad event."""
    if isinstance(exc, sa.exc.DBAPIError):
        return not isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError))
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        # Raised by the archive's raw COPY: a dropped or refused connection mid-batch is the
        # store being away (retry), only bad data is the events' fault.
        return not isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError)
    return isinstance(
        exc,
        (
            OSError,
            asyncio.TimeoutError,
            RedisConnectionError,
            RedisTimeoutError,
            sa.exc.DisconnectionError,
            sa.exc.TimeoutError,
            sa.exc.ResourceClosedError,
            FenceBroken,
        ),
    )


def _batch(entries: Sequence[Entry]) -> list[tuple[tuple[int, int], Envelope]]:
    """The entries that carry an event, with their stream-order keys."""
    return [(e.key, e.envelope) for e in entries if e.envelope is not None]


def _todo(
    batch: Sequence[tuple[tuple[int, int], Envelope]],
    checkpoint: str,
    handles: frozenset[str],
) -> list[Envelope]:
    after = stream_id_key(checkpoint)
    return [e for key, e in batch if key > after and (not handles or e.type in handles)]


@dataclass
class ProjectionSet:
    """The projections one projector keeps up to date, and how to commit a batch to them."""

    sql: Sequence[SqlProjection]
    redis: Sequence[RedisProjection]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.sql] + [p.name for p in self.redis]

    async def commit(
        self,
        sql: AsyncEngine | AsyncConnection,
        redis: Redis,
        shard: int,
        entries: Sequence[Entry],
        consumer: str,
    ) -> bool:
        """Apply ``entries`` (consecutive, in stream order) to every projection, exactly once.

        ``commit_sql`` then ``commit_redis``, with the Redis side's reads overlapping the SQL
        transaction. Returns whether the entries were also acked (see ``commit_redis``).
        """
        if not entries:
            return False
        batch = _batch(entries)
        planning = asyncio.create_task(self._plan_redis(redis, shard, batch, entries[-1].stream_id))
        try:
            await self.commit_sql(sql, redis, shard, entries, consumer)
        except BaseException:
            planning.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await planning
            raise
        return await self.commit_redis(redis, shard, entries, consumer, await planning)

    async def commit_sql(
        self,
        sql: AsyncEngine | AsyncConnection,
        redis: Redis,
        shard: int,
        entries: Sequence[Entry],
        consumer: str,
    ) -> None:
        """The SQL side of ``entries``: one transaction for every SQL projection.

        Entries without an envelope (dead-lettered or deleted) only move the checkpoints.
        """
        if not entries or not self.sql:
            return
        upto = entries[-1].stream_id
        fence = _Fence(redis, stream_name(shard), entries[0].stream_id, upto, consumer)
        if isinstance(sql, AsyncConnection):
            async with sql.begin():
                await self._commit_sql(sql, shard, _batch(entries), upto, fence)
        else:
            async with sql.begin() as conn:
                await self._commit_sql(conn, shard, _batch(entries), upto, fence)

    async def commit_redis(
        self,
        redis: Redis,
        shard: int,
        entries: Sequence[Entry],
        consumer: str,
        plan: _RedisPlan | None = None,
    ) -> bool:
        """The Redis side of ``entries``, after their SQL side committed; whether they were acked.

        When Redis projections moved, the ``XACK`` rides in their script, atomically with their
        effects; otherwise the caller acks. A batch's Redis side must not start before the
        previous batch's finished (``prepare`` reads what that one wrote).
        """
        if not entries:
            return False
        upto = entries[-1].stream_id
        batch = _batch(entries)
        if plan is None:
            plan = await self._plan_redis(redis, shard, batch, upto)
        ack = ("XACK", stream_name(shard), GROUP, *(e.stream_id for e in entries))
        return await self._commit_redis(redis, shard, batch, upto, consumer, ack, plan)

    async def _commit_sql(
        self,
        conn: AsyncConnection,
        shard: int,
        batch: Sequence[tuple[tuple[int, int], Envelope]],
        upto: str,
        fence: _Fence,
    ) -> None:
        """The SQL side, inside the caller's transaction."""
        upto_key = stream_id_key(upto)
        checkpoints = await lock_sql_checkpoints(conn, [p.name for p in self.sql], shard)
        moved: list[str] = []
        for projection in sorted(self.sql, key=_applied_last):
            checkpoint = checkpoints.get(projection.name, ZERO)
            if stream_id_key(checkpoint) >= upto_key:
                continue
            await fence.check(checkpoint)
            todo = _todo(batch, checkpoint, projection.handles)
            if todo:
                try:
                    await projection.apply(conn, todo)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    raise ProjectionFailed(projection.name, exc) from exc
            moved.append(projection.name)
        await write_sql_checkpoints(conn, moved, upto, shard)

    async def _plan_redis(
        self,
        redis: Redis,
        shard: int,
        batch: Sequence[tuple[tuple[int, int], Envelope]],
        upto: str,
    ) -> _RedisPlan:
        """Read the Redis checkpoints and run each projection's ``prepare`` for its part."""
        plan = _RedisPlan()
        if not self.redis:
            return plan
        keys = [redis_checkpoint_key(p.name, shard) for p in self.redis]
        upto_key = stream_id_key(upto)
        for projection, key, value in zip(self.redis, keys, await redis.mget(keys), strict=True):
            checkpoint = text(value) if value else ZERO
            if stream_id_key(checkpoint) >= upto_key:
                continue
            plan.expected[key] = checkpoint
            todo = _todo(batch, checkpoint, projection.handles)
            if todo:
                ready = await _guard(projection.name, projection.prepare(redis, todo))
                plan.work.append((projection, todo, ready))
        return plan

    async def _commit_redis(
        self,
        redis: Redis,
        shard: int,
        batch: Sequence[tuple[tuple[int, int], Envelope]],
        upto: str,
        consumer: str,
        ack: tuple[str, ...],
        plan: _RedisPlan,
    ) -> bool:
        """Run the plan in one script; if a checkpoint moved meanwhile, plan again."""
        for _ in range(MAX_CAS_RETRIES):
            if not plan.expected:
                return False
            pipe = recorder(redis)
            for projection, todo, ready in plan.work:
                try:
                    projection.apply(pipe, todo, ready)
                except Exception as exc:
                    raise ProjectionFailed(projection.name, exc) from exc
            outcome = await run_batch(
                redis,
                [*recorded(pipe), ack],
                plan.expected,
                upto,
                stream_name(shard),
                GROUP,
                consumer,
                fence_after=min(plan.expected.values(), key=stream_id_key),
            )
            if outcome.applied:
                for error in outcome.errors:
                    log.error("shard %s up to %s: a Redis command failed: %s", shard, upto, error)
                return True
            if outcome.refusal != "moved":
                raise FenceBroken(f"entry {outcome.refusal} is pending at another consumer")
            plan = await self._plan_redis(redis, shard, batch, upto)
        raise FenceBroken(f"Redis checkpoints of shard {shard} kept moving")


@dataclass
class _RedisPlan:
    """What the Redis side will do: checkpoints as read, and each projection's prepared part."""

    expected: dict[str, str] = field(default_factory=dict)  # checkpoint key -> position
    work: list[tuple[RedisProjection, list[Envelope], Any]] = field(default_factory=list)


def _applied_last(projection: SqlProjection) -> bool:
    """Projections that serialise commits (the archive's position lock) go last."""
    return bool(getattr(projection, "apply_last", False))


async def _guard(name: str, work: object) -> object:
    try:
        return await work  # type: ignore[misc]
    except Exception as exc:
        if is_transient(exc):
            raise
        raise ProjectionFailed(name, exc) from exc


class _Fence:
    """Checks, once per distinct checkpoint, that the batch starts at the checkpoint's next
    entry (a batch read past one of our own pending entries would move the checkpoint over it)
    and that no other consumer holds entries in range.

    Checked under the side's checkpoint lock (row lock, or WATCH), so no commit can move the
    checkpoint meanwhile; later deliveries all lie beyond ``upto``.
    """

    def __init__(self, redis: Redis, stream: str, first: str, upto: str, consumer: str) -> None:
        self.redis = redis
        self.stream = stream
        self.first = first
        self.upto = upto
        self.consumer = consumer
        self.checked: set[str] = set()

    async def check(self, checkpoint: str) -> None:
        if checkpoint in self.checked:
            return
        problem = await fence_problem(
            self.redis, self.stream, checkpoint, self.first, self.upto, self.consumer
        )
        if problem is not None:
            raise FenceBroken(problem)
        self.checked.add(checkpoint)
