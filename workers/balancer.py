"""Which shards a projector job projects: its worker's fair share, rebalanced as workers come
and go.

Every ``medio worker`` has one projector job queued or running at a time (``workers.jobs``).
The job runs a ``ShardBalancer`` for ``MEDIO_PROJECTOR_RUN_SECONDS``; each round, every
``round_seconds`` (a third of ``MEDIO_PROJECTOR_LOCK_TTL_SECONDS``, at most 1 s):

1. Heartbeat. The worker's id goes into the sorted set ``medio:workers``, scored with Redis's
   own clock (so machines' clocks need not agree); ids not seen for the lock TTL are dropped.
   The set's size is the number of live workers: those whose projector job runs.
2. Fair share: a worker keeps at most ``ceil(shards / live workers)`` shards.
3. Over its share (another worker appeared): it asks the shards beyond it to stop; each ends
   after its current step and releases its lock, and a worker under its share takes it at its
   next round.
4. Under its share: it first takes on the shards its previous job handed over (their locks
   still held under the same token), then starts a projector for free shards (no lock key), in
   random order, until it has its share. That is how the shards of a worker that stopped
   (released at once) or was killed (its locks and heartbeat expire after the TTL) find new
   holders.

The shards' projectors (``projections.runtime.run_projector``) run concurrently on the job's
event loop and end with the job. The ones the worker keeps hand their locks over rather than
release them: its next job (queued ``HANDOVER_LEAD`` before the end, on its own queue) renews
them under the same token, so a shard never stands without a holder between jobs; if the
worker dies instead, the locks expire within the TTL. The lock alone decides who projects
(``SET NX``: one holder per shard); the share only decides who tries. Two workers may briefly
count different numbers of live workers: then a shard stays free a round longer, or a worker
is over its share for a round, never two holders. With more workers than shards the extra ones
stand by and take over when a holder goes. No projector starts while ``medio replay`` pauses
the projectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.container import Container
from adapters.scripts import Script
from projections.locks import PAUSE_KEY, ShardLock, consumer_name, lock_key
from projections.redis_generation import RedisNotChecked
from projections.runtime import run_projector

log = logging.getLogger(__name__)

WORKERS_KEY = "medio:workers"
MAX_ROUND_SECONDS = 1.0
HANDOVER_LEAD = 1.5  # seconds before a job ends that its successor is queued
END_WAIT_SECONDS = 3.0  # past its end, how long a job waits for its projectors to let go

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
    """Projects a worker's fair share of the shards, one job at a time (see the module
    docstring). One per worker process, kept from job to job with the shards handed over."""

    def __init__(self, container: Container) -> None:
        settings = container.settings
        self.container = container
        self.redis: Redis = container.redis
        self.shards = settings.stream_shards
        self.ttl_seconds = settings.projector_lock_ttl_seconds
        self.ttl_ms = max(int(self.ttl_seconds * 1000), 100)
        self.round_seconds = min(MAX_ROUND_SECONDS, self.ttl_seconds / 3)
        self.handed: dict[int, str] = {}  # shard -> token its lock is kept under for the next job
        self.projectors: dict[int, asyncio.Task[None]] = {}
        self.giving_up: set[int] = set()
        self.applied = 0

    async def run(
        self,
        worker: str,
        seconds: float,
        stopping: Callable[[], bool],
        successor: Callable[[], Awaitable[None]] | None,
    ) -> int:
        """Balance every round for ``seconds`` (or until ``stopping()``); the events applied.

        ``successor`` is called once, ``HANDOVER_LEAD`` seconds before the end, unless stopping.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self.projectors, self.giving_up, self.applied = {}, set(), 0
        try:
            while not stopping() and (left := deadline - loop.time()) > 0:
                if successor is not None and left <= HANDOVER_LEAD:
                    await successor()
                    successor = None
                try:
                    await self.balance_once(worker, deadline, stopping)
                except RedisError as exc:
                    log.warning("shard balancing round failed: %s", exc)
                await asyncio.sleep(min(self.round_seconds, max(deadline - loop.time(), 0)))
        finally:
            if self.projectors:  # they end at the deadline, or after their step when stopping
                await asyncio.wait(self.projectors.values(), timeout=END_WAIT_SECONDS)
            if stopping():
                await self.let_go()
        return self.applied

    async def balance_once(
        self, worker: str, deadline: float, stopping: Callable[[], bool]
    ) -> None:
        """One round: heartbeat, then give shards up or take handed-over and free ones."""
        live = int(await _BEAT.run(self.redis, [WORKERS_KEY], worker, str(self.ttl_ms)))
        share = fair_share(self.shards, live)
        for shard, task in list(self.projectors.items()):
            if task.done():
                del self.projectors[shard]
                self.giving_up.discard(shard)
        kept = sorted(shard for shard in self.projectors if shard not in self.giving_up)
        for shard in kept[share:]:
            log.info("giving shard %s up: %s live workers, a share of %s", shard, live, share)
            self.giving_up.add(shard)
        missing = max(share - len(kept), 0)
        if await self.redis.exists(PAUSE_KEY):
            await self.let_go()  # nothing starts during a pause: let them go now
            return
        adopted = list(self.handed.items())[:missing]
        for shard, token in adopted:
            self._start(shard, token, adopt=True, deadline=deadline, stopping=stopping)
        await self.let_go()  # beyond the share: for the workers under theirs
        missing -= len(adopted)
        if missing <= 0:
            return
        candidates = [shard for shard in range(self.shards) if shard not in self.projectors]
        pipe = self.redis.pipeline(transaction=False)
        for shard in candidates:
            pipe.exists(lock_key(shard))
        taken = await pipe.execute()
        free = [shard for shard, held in zip(candidates, taken, strict=True) if not held]
        random.shuffle(free)  # workers taking at once mostly try different shards
        for shard in free[:missing]:
            self._start(shard, consumer_name(), adopt=False, deadline=deadline, stopping=stopping)

    def _start(
        self, shard: int, token: str, adopt: bool, deadline: float, stopping: Callable[[], bool]
    ) -> None:
        self.handed.pop(shard, None)
        self.projectors[shard] = asyncio.create_task(
            self._project(shard, token, adopt, deadline, stopping)
        )

    async def _project(
        self, shard: int, token: str, adopt: bool, deadline: float, stopping: Callable[[], bool]
    ) -> None:
        """Project ``shard`` until the job ends (handing the lock over) or it is given up; a
        run that fails is started again next round."""

        def keeps() -> bool:
            return not (stopping() or shard in self.giving_up)

        try:
            applied = await run_projector(
                self.container,
                shard,
                seconds=deadline - asyncio.get_running_loop().time(),
                consumer=token,
                stopping=lambda: not keeps(),
                adopt=adopt,
                hand_over=True,
            )
        except RedisNotChecked:  # Redis restarted under the run: the next run checks it first
            log.warning(
                "shard %s: Redis restarted; its next run checks it against the archive", shard
            )
        except Exception:
            log.exception("the projector of shard %s failed; the next round starts it again", shard)
        else:
            if applied is not None:
                self.applied += applied
                if keeps():  # ended on its time: the lock was handed over (or lost: then the
                    self.handed[shard] = token  # next job's renewal fails and it moves on)

    async def let_go(self) -> None:
        """Release the handed-over locks not taken on (if still ours): beyond the share, during
        a pause, or for good when the worker stops."""
        handed, self.handed = self.handed, {}
        for shard, token in handed.items():
            with contextlib.suppress(RedisError):
                await ShardLock(self.redis, shard, self.ttl_seconds, token).release()
