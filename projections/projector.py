"""The projector of one shard: read a batch through the consumer group, commit it, ack it.

Its pending entries come first (after a crash, a takeover or a failed commit), then new ones
with a blocking read. A batch that fails for a reason a retry will not fix is split in halves
until the one bad entry is found; that entry goes to the dead-letter stream and the shard
moves on. A store that is down (connection refused, timeout) stops nothing: the batch stays
pending and is retried with a growing pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from medio.eventlog import stream_name
from projections.apply import FenceBroken, ProjectionFailed, ProjectionSet, is_transient
from projections.checkpoints import ZERO, lowest_checkpoint
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.streams import (
    GROUP,
    Entry,
    claim_all,
    dead_letter,
    ensure_group,
    entries_of,
    stream_ids,
)

log = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 1.0
MAX_RETRY_PAUSE_SECONDS = 2.0
IDLE_CONSUMER_MS = 60_000


class ShardProjector:
    """Keeps every projection of ``projections`` up to date with one shard's stream."""

    def __init__(
        self,
        redis: Redis,
        engine: AsyncEngine,
        shard: int,
        projections: ProjectionSet,
        consumer: str,
        batch_size: int = 500,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.shard = shard
        self.stream = stream_name(shard)
        self.projections = projections
        self.consumer = consumer
        self.batch_size = batch_size
        self.backlog = True  # our pending entries come before new ones
        self.applied = 0
        self.dead_lettered = 0
        self._last_trim = 0.0
        self._retry_pause = 0.1
        self._conn: AsyncConnection | None = None  # kept across batches: no checkout, no ping

    async def start(self) -> None:
        """Create the group if needed and take over every entry a previous holder left pending."""
        await ensure_group(self.redis, self.stream)
        await self.claim_pending()
        await self._forget_idle_consumers()

    async def claim_pending(self) -> int:
        """Claim all pending entries of the group (we hold the shard; their reader is gone)."""
        claimed, cursor = 0, "0-0"
        while True:
            cursor, count = await claim_all(self.redis, self.stream, self.consumer, cursor)
            claimed += count
            if cursor == "0-0":
                break
        self.backlog = True
        return claimed

    async def step(self, block_ms: int | None) -> int:
        """Read one batch and project it; returns the entries handled (0 when none came).

        A store being down is not an error here: the batch stays pending and the next step
        retries it after a pause that grows to ``MAX_RETRY_PAUSE_SECONDS``.
        """
        try:
            entries = await self.read(block_ms)
            if entries:
                await self.handle(entries)
        except Exception as exc:
            if not is_transient(exc):
                raise
            await self._pause_after(exc)
            return 0
        self._retry_pause = 0.1
        if entries:
            await self._maybe_trim()
        return len(entries)

    async def _sql(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.engine.connect()
        return self._conn

    async def close(self) -> None:
        """Give the database connection back (or drop it, if it broke)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:
                if not is_transient(exc):
                    raise

    async def _pause_after(self, exc: BaseException) -> None:
        log.warning("shard %s: will retry pending entries: %r", self.shard, exc)
        self.backlog = True
        await self.close()
        await asyncio.sleep(self._retry_pause)
        self._retry_pause = min(self._retry_pause * 2, MAX_RETRY_PAUSE_SECONDS)
        if isinstance(exc, FenceBroken):
            try:
                await self.claim_pending()
            except Exception as again:
                if not is_transient(again):
                    raise

    async def read(self, block_ms: int | None) -> list[Entry]:
        """Our pending entries while there are any, else new ones (waiting up to ``block_ms``)."""
        if self.backlog:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: "0"}, count=self.batch_size
            )
            entries = entries_of(self.shard, reply)
            if entries:
                return entries
            self.backlog = False
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=self.batch_size, block=block_ms
        )
        return entries_of(self.shard, reply)

    async def handle(self, entries: Sequence[Entry]) -> None:
        """Dead-letter undecodable entries, commit the rest exactly once, then ack all."""
        for entry in entries:
            if entry.problem is not None:
                await self._dead_letter(entry, entry.problem)
        if not await self._commit_isolating(entries):
            await self._ack(entries)
        self.applied += sum(1 for e in entries if e.envelope is not None)

    async def _ack(self, entries: Sequence[Entry]) -> None:
        await self.redis.xack(self.stream, GROUP, *stream_ids(entries))

    async def _commit_isolating(self, entries: Sequence[Entry]) -> bool:
        """Commit, splitting around entries a projection refuses; whether all were acked."""
        try:
            return await self.projections.commit(
                await self._sql(), self.redis, self.shard, entries, self.consumer
            )
        except ProjectionFailed as exc:
            if len(entries) == 1:
                await self._dead_letter(entries[0], str(exc))
                gone = Entry(entries[0].stream_id, entries[0].key, None, {})
                return await self.projections.commit(
                    await self._sql(), self.redis, self.shard, [gone], self.consumer
                )
            half = len(entries) // 2
            first = await self._commit_isolating(entries[:half])
            return await self._commit_isolating(entries[half:]) and first

    async def _dead_letter(self, entry: Entry, reason: str) -> None:
        log.error("shard %s: entry %s dead-lettered: %s", self.shard, entry.stream_id, reason)
        await dead_letter(self.redis, self.shard, entry, reason)
        self.dead_lettered += 1

    async def _maybe_trim(self) -> None:
        """Drop the entries every projection (registered or ours) has passed, once a second."""
        now = time.monotonic()
        if now - self._last_trim < TRIM_INTERVAL_SECONDS:
            return
        self._last_trim = now
        sql_names = {cls.name for cls in SQL_PROJECTIONS} | {p.name for p in self.projections.sql}
        redis_names = {cls.name for cls in REDIS_PROJECTIONS}
        redis_names |= {p.name for p in self.projections.redis}
        try:
            lowest = await lowest_checkpoint(
                self.redis, self.engine, self.shard, sql_names, redis_names
            )
            if lowest != ZERO:
                await self.redis.xtrim(self.stream, minid=lowest, approximate=True)
        except Exception as exc:  # trimming is housekeeping; the next one will do
            if not is_transient(exc):
                raise
            log.warning("shard %s: trimming failed: %r", self.shard, exc)

    async def _forget_idle_consumers(self) -> None:
        """Remove long-idle consumers with nothing pending: dead runs must not pile up."""
        for consumer in await self.redis.xinfo_consumers(self.stream, GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            idle = consumer.get("idle", 0) > IDLE_CONSUMER_MS
            if name != self.consumer and not consumer["pending"] and idle:
                await self.redis.xgroup_delconsumer(self.stream, GROUP, name)
