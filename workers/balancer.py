"""Which shards a worker projects: its fair share, rebalanced as workers come and go.

Every ``medio worker`` runs a ``ShardBalancer`` in a thread of its own (``ProjectorThread``:
its own event loop and container, beside RQ). Each round, every
``round_seconds`` (a third of ``MEDIO_PROJECTOR_LOCK_TTL_SECONDS``, at most 1 s):

1. Heartbeat. The worker's id goes into the sorted set ``medio:workers``, scored with Redis's
   own clock (so machines' clocks need not agree); ids not seen for the lock TTL are dropped.
   The set's size is the number of live workers.
2. Fair share: a worker keeps at most ``ceil(shards / live workers)`` shards.
3. Over its share (another worker appeared): it asks the shards beyond it to stop; each ends
   after its current step and releases its lock, and a worker under its share takes it at its
   next round.
4. Under its share: it starts a projector for free shards (no lock key), in random order,
   until it has its share. That is how the shards of a worker that stopped (released at once)
   or was killed (its locks and heartbeat expire after the TTL) find new holders.

A shard's projector is ``projections.runtime.run_projector`` without a time limit: it runs for
as long as its worker keeps the shard, renewing the lock in the background, and ends when the
worker gives the shard up or stops, when the lock is lost, or when ``medio replay`` pauses the
projectors (no projector starts while the pause key exists). The lock alone decides who
projects (``SET NX``: one holder per shard); the share only decides who tries. Two workers may
briefly count different numbers of live workers: then a shard stays free a round longer, or a
worker is over its share for a round, never two holders. When shards outnumber workers each
worker projects several at once on its loop; with more workers than shards the extra ones
stand by and take over when a holder goes.

Timings: a stopping worker releases its shards after its current step (at most
``MAX_BLOCK_SECONDS``) and leaves the set; a killed worker's shards have new holders within the
lock TTL plus a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.container import Container
from adapters.scripts import Script
from adapters.settings import Settings
from projections.locks import PAUSE_KEY, consumer_name, lock_key
from projections.redis_generation import RedisNotChecked
from projections.runtime import run_projector
from services.container import build_container

log = logging.getLogger(__name__)

WORKERS_KEY = "medio:workers"
MAX_ROUND_SECONDS = 1.0
STOP_WAIT_SECONDS = 3.0  # a stopping worker waits this long for its projectors to let go

# Heartbeat ARGV[1] at Redis's time, forget ids silent for ARGV[2] ms; the live count.
_BEAT = Script("""
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
""")


def fair_share(shards: int, live_workers: int) -> int:
    """The most shards one of ``live_workers`` keeps: together they cover every shard."""
    return math.ceil(shards / max(live_workers, 1))


class ShardBalancer:
    """Keeps this worker's fair share of the shards projected (see the module docstring)."""

    def __init__(self, container: Container, stopping: Callable[[], bool]) -> None:
        settings = container.settings
        self.container = container
        self.redis: Redis = container.redis
        self.shards = settings.stream_shards
        self.ttl_ms = max(int(settings.projector_lock_ttl_seconds * 1000), 100)
        self.round_seconds = min(MAX_ROUND_SECONDS, settings.projector_lock_ttl_seconds / 3)
        self.id = consumer_name()
        self.stopping = stopping
        self.projectors: dict[int, asyncio.Task[None]] = {}
        self.giving_up: set[int] = set()

    async def run(self) -> None:
        """Balance every round until ``stopping()``; then let every shard go."""
        try:
            while not self.stopping():
                try:
                    await self.balance_once()
                except RedisError as exc:
                    log.warning("shard balancing round failed: %s", exc)
                await asyncio.sleep(self.round_seconds)
        finally:
            self.giving_up.update(self.projectors)
            if self.projectors:
                await asyncio.wait(self.projectors.values(), timeout=STOP_WAIT_SECONDS)
            with contextlib.suppress(RedisError):
                await self.redis.zrem(WORKERS_KEY, self.id)

    async def balance_once(self) -> None:
        """One round: heartbeat, then give shards up or take free ones to meet the share."""
        live = int(await _BEAT.run(self.redis, [WORKERS_KEY], self.id, str(self.ttl_ms)))
        share = fair_share(self.shards, live)
        for shard, task in list(self.projectors.items()):
            if task.done():
                del self.projectors[shard]
                self.giving_up.discard(shard)
        kept = sorted(shard for shard in self.projectors if shard not in self.giving_up)
        for shard in kept[share:]:
            log.info("giving shard %s up: %s live workers, a share of %s", shard, live, share)
            self.giving_up.add(shard)
        missing = share - len(kept)
        if missing <= 0:
            return
        candidates = [shard for shard in range(self.shards) if shard not in self.projectors]
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(PAUSE_KEY)
        for shard in candidates:
            pipe.exists(lock_key(shard))
        paused, *taken = await pipe.execute()
        if paused:
            return
        free = [shard for shard, held in zip(candidates, taken, strict=True) if not held]
        random.shuffle(free)  # workers taking at once mostly try different shards
        for shard in free[:missing]:
            self.projectors[shard] = asyncio.create_task(self._project(shard))

    def keeps(self, shard: int) -> bool:
        """Whether ``shard``'s projector should go on."""
        return not (self.stopping() or shard in self.giving_up)

    async def _project(self, shard: int) -> None:
        """Project ``shard`` until given up; a run that fails is started again next round."""
        try:
            applied = await run_projector(
                self.container, shard, stopping=lambda: not self.keeps(shard)
            )
        except RedisNotChecked:  # Redis restarted under the run: the next run checks it first
            log.warning(
                "shard %s: Redis restarted; its next run checks it against the archive", shard
            )
        except Exception:
            log.exception("the projector of shard %s failed; the next round starts it again", shard)
        else:
            if applied is not None:
                log.info("projector of shard %s let go after %s events", shard, applied)


class ProjectorThread(threading.Thread):
    """The worker's projectors: a ``ShardBalancer`` on an event loop and container of its own.

    It ends once ``stop_requested`` is set (by ``stop``, or by the worker's signal handler).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="medio-projectors", daemon=True)
        self.settings = settings
        self.stop_requested = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        # a connection per shard it may hold (all of them, alone) and one for trimming
        container = build_container(self.settings, pool_size=self.settings.stream_shards + 1)
        try:
            await ShardBalancer(container, self.stop_requested.is_set).run()
        finally:
            await container.close()

    def stop(self) -> None:
        """Let every shard go and wait (bounded) for the thread to end."""
        self.stop_requested.set()
        self.join(timeout=STOP_WAIT_SECONDS + MAX_ROUND_SECONDS + 1)
