"""The projector of one shard: read a batch through the consumer group, commit it, ack it.

Its pending entries come first (after a crash, a takeover or a failed commit), then new ones
with a blocking read. A batch that fails for a reason a retry will not fix is split in halves
until the one bad entry is found; that entry goes to the dead-letter stream and the shard
moves on. A store that is down (connection refused, timeout) stops nothing: the batch stays
pending and is retried with a growing pause.

Each batch is committed by ``ProjectionSet.commit`` (SQL side, then Redis side and ack). A
pipelined projector (``ahead=True``, what the runtime uses) overlaps the three parties a batch
waits on: while batch N's SQL transaction runs, batch N-1's Redis side (and ack) runs and batch
N+1 is read and decoded. Each side still commits its batches in stream order (a commit waits
for the one before it between its two sides), so nothing changes for exactly-once: an error
just leaves the batches in flight pending, to be read again from the group's pending list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.eventlog import stream_name
from projections.apply import FenceBroken, ProjectionSet, is_transient
from projections.checkpoints import ZERO, lowest_checkpoint
from projections.redis_commands import text
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.streams import GROUP, Entry, claim_all, dead_letter, ensure_group, entries_of

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
        ahead: bool = False,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.shard = shard
        self.stream = stream_name(shard)
        self.projections = projections
        self.consumer = consumer
        self.batch_size = batch_size
        self.ahead = ahead
        self.backlog = True  # our pending entries come before new ones
        self._cursor = "0"  # the last pending entry read in this pass over the backlog
        self._next: asyncio.Task[list[Entry]] | None = None  # the batch read ahead
        # Batches whose commit is running (at most two: one on its Redis side, one on its SQL
        # side), oldest first.
        self._in_flight: list[tuple[Sequence[Entry], asyncio.Task[None]]] = []
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
        self._rewind()
        return claimed

    def _rewind(self) -> None:
        """Read our pending entries again from the first."""
        self.backlog = True
        self._cursor = "0"

    async def step(self, block_ms: int | None) -> int:
        """Read one batch and project it; returns the entries taken (0 when none came).

        Without ``ahead`` the batch is committed and acked on return. With it, its Redis side
        is still running and the next batch is being read; ``settle`` (or a step that finds
        nothing new) finishes them. A store being down is not an error here: the batches in
        flight stay pending and the next step retries them after a pause that grows to
        ``MAX_RETRY_PAUSE_SECONDS``.
        """
        try:
            entries = await self._take(block_ms)
            if entries:
                if self.ahead:
                    self._next = asyncio.create_task(self.read(block_ms))
                await self.handle(entries)
            if not entries or not self.ahead:
                await self.settle()
        except Exception as exc:  # what is in flight stays pending: close() drops it
            if not is_transient(exc):
                raise
            await self._pause_after(exc)
            return 0
        self._retry_pause = 0.1
        if entries:
            await self._maybe_trim()
        return len(entries)

    async def _take(self, block_ms: int | None) -> list[Entry]:
        """The batch read ahead, else one read now."""
        ahead, self._next = self._next, None
        return await (ahead if ahead is not None else self.read(block_ms))

    async def settle(self, keep: int = 0) -> None:
        """Wait for the commits in flight but the newest ``keep``: each one's Redis side and
        ack. A commit that failed raises here (its batch stays pending)."""
        while len(self._in_flight) > keep:
            entries, commit = self._in_flight.pop(0)
            await commit
            self.applied += sum(1 for e in entries if e.envelope is not None)

    async def _drop_in_flight(self) -> None:
        """Forget the batches in flight after an error: they stay pending in the group."""
        reading, self._next = self._next, None
        if reading is not None:
            reading.cancel()
        committing, self._in_flight = self._in_flight, []
        for task in [reading, *(commit for _, commit in committing)]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _sql(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.engine.connect()
        return self._conn

    async def close(self) -> None:
        """Finish the batch in flight, drop the one read ahead (it stays pending, for the next
        holder to claim), give the database connection back (or drop it, if it broke)."""
        try:
            await self.settle()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("shard %s: the last batch stays pending: %r", self.shard, exc)
        finally:
            await self._drop_in_flight()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:
                if not is_transient(exc):
                    raise

    async def _pause_after(self, exc: BaseException) -> None:
        log.warning("shard %s: will retry pending entries: %r", self.shard, exc)
        try:
            await self.close()
        finally:
            # After close: the batch read ahead may still finish during it and move the
            # cursor; rewinding first let it skip our pending entries (a lost batch).
            self._rewind()
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
                GROUP, self.consumer, {self.stream: self._cursor}, count=self.batch_size
            )
            entries = entries_of(self.shard, reply)
            if entries:
                self._cursor = entries[-1].stream_id
                return entries
            self.backlog = False
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=self.batch_size, block=block_ms
        )
        return entries_of(self.shard, reply)

    async def handle(self, entries: Sequence[Entry]) -> None:
        """Dead-letter undecodable entries and start committing the batch; return once its SQL
        side is in and the batch before it is done (its own Redis side may still run)."""
        for entry in entries:
            if entry.problem is not None:
                await self._dead_letter(entry, entry.problem)
        sql_committed = asyncio.get_running_loop().create_future()
        commit = asyncio.create_task(
            self.projections.commit(
                await self._sql(),
                self.redis,
                self.shard,
                entries,
                self.consumer,
                previous=self._in_flight[-1][1] if self._in_flight else None,
                sql_committed=lambda: sql_committed.set_result(None),
                refuse=self._dead_letter,
            )
        )
        self._in_flight.append((entries, commit))
        await asyncio.wait((sql_committed, commit), return_when=asyncio.FIRST_COMPLETED)
        await self.settle(keep=0 if commit.done() else 1)

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
            name = text(consumer["name"])
            idle = consumer.get("idle", 0) > IDLE_CONSUMER_MS
            if name != self.consumer and not consumer["pending"] and idle:
                await self.redis.xgroup_delconsumer(self.stream, GROUP, name)
