"""Exactly-once effects on at-least-once delivery: ``ProjectionSet.commit`` commits a batch.

It is the one place a batch of a shard's consecutive entries is committed, always in this order:

1. the SQL side: one transaction locks the SQL checkpoints, writes every SQL projection's rows
   for the entries after its checkpoint (the archive among them) and moves the checkpoints;
2. the Redis side, once the batch before is done with its own: one script checks that the
   Redis checkpoints did not move, runs every Redis projection's commands, moves the
   checkpoints and ``XACK``s the entries (a plain ``XACK`` when no Redis projection is behind).

So entries are acked only after both sides committed. A pipelined projector runs one batch's
SQL side while the previous batch's Redis side runs (``previous`` and ``sql_committed``).
Each side first checks a fence: no entry between its checkpoint and the end of the batch is
pending at another consumer. A projector that lost its lock (or two that race) can therefore
never move a checkpoint past entries it does not hold, and a redelivered entry at or below a
checkpoint is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.eventlog import stream_name
from projections.base import Commands, Envelope, RedisProjection, SqlProjection, stream_id_key
from projections.checkpoints import (
    ZERO,
    lock_sql_checkpoints,
    redis_checkpoint_key,
    write_sql_checkpoints,
)
from projections.redis_batch import run_batch
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


Refuse = Callable[[Entry, str], Awaitable[None]]  # set an entry aside, with the reason


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
        *,
        previous: Awaitable[object] | None = None,
        sql_committed: Callable[[], object] | None = None,
        refuse: Refuse | None = None,
    ) -> None:
        """Apply ``entries`` (consecutive, in stream order) to every projection exactly once,
        and ack them. In order: the SQL side; ``sql_committed()`` (a pipelined projector may
        start the next batch's SQL side); ``previous`` awaited (the commit of the batch before:
        this batch's Redis reads must see its writes); the Redis side, with the ack.

        A projection that refuses an entry for good (``ProjectionFailed``) raises, unless
        ``refuse`` is given: then the side that refused is committed again in halves until the
        entry is found, the entry goes to ``refuse`` and is committed as deleted (its position
        passed, no effect), and the rest is applied. Entries without an envelope (dead-lettered
        or deleted) only move the checkpoints and are acked.
        """
        if not entries:
            return
        batch = _BatchCommit(self, sql, redis, shard, consumer)
        try:
            await batch.sql_side(entries)
        except ProjectionFailed:
            if refuse is None:
                raise
            if previous is not None:
                await previous
            await _isolating(batch.both_sides, entries, refuse)
            return
        if sql_committed is not None:
            sql_committed()
        if previous is not None:
            await previous
        try:
            await batch.redis_side(entries)
        except ProjectionFailed:  # the SQL side is in: only the Redis side goes again
            if refuse is None:
                raise
            await _isolating(batch.redis_side, entries, refuse)


@dataclass
class _BatchCommit:
    """The two sides of ``ProjectionSet.commit`` for one shard, consumer and pair of stores."""

    projections: ProjectionSet
    sql: AsyncEngine | AsyncConnection
    redis: Redis
    shard: int
    consumer: str

    async def sql_side(self, entries: Sequence[Entry]) -> None:
        """One transaction: lock the SQL checkpoints, write each SQL projection's rows for the
        entries after its checkpoint (the archive last), move the checkpoints."""
        if not self.projections.sql:
            return
        if isinstance(self.sql, AsyncConnection):
            async with self.sql.begin():
                await self._write_sql(self.sql, entries)
        else:
            async with self.sql.begin() as conn:
                await self._write_sql(conn, entries)

    async def _write_sql(self, conn: AsyncConnection, entries: Sequence[Entry]) -> None:
        upto = entries[-1].stream_id
        upto_key, batch = stream_id_key(upto), _batch(entries)
        first = entries[0].stream_id
        fence = _Fence(self.redis, stream_name(self.shard), first, upto, self.consumer)
        projections = self.projections.sql
        checkpoints = await lock_sql_checkpoints(conn, [p.name for p in projections], self.shard)
        moved: list[str] = []
        for projection in sorted(projections, key=_applied_last):
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
        await write_sql_checkpoints(conn, moved, upto, self.shard)

    async def redis_side(self, entries: Sequence[Entry]) -> None:
        """One script: check the Redis checkpoints did not move (else plan again), run every
        Redis projection's commands, move the checkpoints, ``XACK``. A plain ``XACK`` when no
        Redis projection is behind."""
        stream, upto, batch = stream_name(self.shard), entries[-1].stream_id, _batch(entries)
        ids = [e.stream_id for e in entries]
        for _ in range(MAX_CAS_RETRIES):
            plan = await self._plan_redis(batch, upto)
            if not plan.expected:
                await self.redis.xack(stream, GROUP, *ids)
                return
            commands: Commands = []
            for projection, todo, ready in plan.work:
                try:
                    projection.apply(commands, todo, ready)
                except Exception as exc:
                    raise ProjectionFailed(projection.name, exc) from exc
            commands.append(("XACK", stream, GROUP, *ids))
            outcome = await run_batch(
                self.redis,
                commands,
                plan.expected,
                upto,
                stream,
                GROUP,
                self.consumer,
                fence_after=min(plan.expected.values(), key=stream_id_key),
            )
            if outcome.applied:
                for error in outcome.errors:
                    log.error(
                        "shard %s up to %s: a Redis command failed: %s", self.shard, upto, error
                    )
                return
            if outcome.refusal != "moved":
                raise FenceBroken(f"entry {outcome.refusal} is pending at another consumer")
        raise FenceBroken(f"Redis checkpoints of shard {self.shard} kept moving")

    async def _plan_redis(
        self, batch: Sequence[tuple[tuple[int, int], Envelope]], upto: str
    ) -> _RedisPlan:
        """Read the Redis checkpoints and run each projection's ``prepare`` for its part."""
        plan = _RedisPlan()
        projections = self.projections.redis
        if not projections:
            return plan
        keys = [redis_checkpoint_key(p.name, self.shard) for p in projections]
        upto_key = stream_id_key(upto)
        for projection, key, value in zip(
            projections, keys, await self.redis.mget(keys), strict=True
        ):
            checkpoint = text(value) if value else ZERO
            if stream_id_key(checkpoint) >= upto_key:
                continue
            plan.expected[key] = checkpoint
            todo = _todo(batch, checkpoint, projection.handles)
            if todo:
                ready = await _guard(projection.name, projection.prepare(self.redis, todo))
                plan.work.append((projection, todo, ready))
        return plan

    async def both_sides(self, entries: Sequence[Entry]) -> None:
        await self.sql_side(entries)
        await self.redis_side(entries)


async def _isolating(
    side: Callable[[Sequence[Entry]], Awaitable[None]], entries: Sequence[Entry], refuse: Refuse
) -> None:
    """``side(entries)``, split in halves around the entries a projection refuses."""
    try:
        await side(entries)
    except ProjectionFailed as exc:
        if len(entries) == 1:
            await refuse(entries[0], str(exc))
            await side([entries[0]._replace(envelope=None, fields={}, problem=None)])
            return
        half = len(entries) // 2
        await _isolating(side, entries[:half], refuse)
        await _isolating(side, entries[half:], refuse)


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

    Checked under the SQL checkpoints' row lock, so no commit can move them meanwhile; later
    deliveries all lie beyond ``upto``. (The Redis side's fence is inside its script.)
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
