"""The shard lock: one projector per shard, taken over within seconds when its holder dies.

The lock is a Redis key with a TTL, renewed in the background while held. It keeps projectors
from competing for a shard (and lets ``medio replay`` pause them); correctness does not rest on
it: the checkpoint fence in ``projections.apply`` refuses a commit that would skip entries
another consumer still holds.

Projector jobs take free locks only (``SET NX``), each worker up to its fair share
(``workers.balancer``). A job that ends on its time hands the shards it keeps to its worker's
next job: the lock stays held (renewed once more, then left to its TTL) and the next job
renews it under the same token, so the shard has no holderless gap between jobs; if no next
job comes (the worker died), the lock expires. One that waits for a held lock (``medio
replay`` pausing the projectors, a test draining the shards) blocks on a list that a release
pushes a signal onto (``BLPOP``), so the shard changes hands in a round trip rather than at the
waiter's next poll; a holder that dies sends none, and its lock is taken once the TTL runs
out, found by a recheck every ``RECHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.scripts import Script

log = logging.getLogger(__name__)

LOCK_PREFIX = "medio:projector:lock:"
RELEASED_PREFIX = "medio:projector:released:"
PAUSE_KEY = "medio:projector:pause"

_RENEW = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""")
_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
""")
RECHECK_SECONDS = 0.1  # how soon a waiter sees a lock that expired (its holder died)
SIGNAL_TTL_MS = 2000  # a release signal nobody waited for is gone after this


def lock_key(shard: int) -> str:
    return f"{LOCK_PREFIX}{{{shard}}}"


def released_key(shard: int) -> str:
    """The list a release of ``shard``'s lock pushes to, waking the one waiting for it."""
    return f"{RELEASED_PREFIX}{{{shard}}}"


def consumer_name() -> str:
    """A name unique to this process and run, so a restart never inherits a dead one's name."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ShardLock:
    """The TTL lock of one shard, held under a token only its holder knows."""

    def __init__(self, redis: Redis, shard: int, ttl_seconds: float, owner: str) -> None:
        self.redis = redis
        self.shard = shard
        self.key = lock_key(shard)
        self.ttl_ms = max(int(ttl_seconds * 1000), 100)
        self.token = owner
        self.lost = asyncio.Event()
        self.paused = asyncio.Event()
        self._done = False
        self._handed_over = False

    async def acquire(self) -> bool:
        """Take the lock if it is free (or already ours)."""
        if await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return await self.renew()

    async def wait_acquire(self, timeout: float, ignore_pause: bool = False) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to go."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if (ignore_pause or not await self.redis.exists(PAUSE_KEY)) and await self.acquire():
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            # at least 10 ms: BLPOP rounds its timeout to milliseconds, and 0 blocks for ever
            wait = max(min(left, RECHECK_SECONDS), 0.01)
            await self.redis.blpop([released_key(self.shard)], wait)

    async def renew(self) -> bool:
        result = await _RENEW.run(self.redis, [self.key], self.token, str(self.ttl_ms))
        return bool(result)

    def hand_over(self) -> None:
        """Keep the lock when ``held`` ends (for the TTL): the next run under this token
        renews it."""
        self._handed_over = True

    async def release(self) -> None:
        """Give the lock up (if still ours) and wake whoever waits for it."""
        await _RELEASE.run(
            self.redis, [self.key, released_key(self.shard)], self.token, str(SIGNAL_TTL_MS)
        )

    async def _keep(self, watch_pause: bool) -> None:
        interval = self.ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            if self._done or self.lost.is_set():
                return
            try:
                if not await self.renew():
                    log.warning("projector lock of shard %s lost", self.shard)
                    self.lost.set()
                elif watch_pause and await self.redis.exists(PAUSE_KEY):
                    self.paused.set()
            except RedisError as exc:  # keep trying until the TTL runs out
                log.warning("renewing the lock of shard %s failed: %s", self.shard, exc)

    @contextlib.asynccontextmanager
    async def held(self, watch_pause: bool = True) -> AsyncIterator[ShardLock]:
        """Renew the (already acquired) lock in the background; release it on exit, or renew it
        a last time if it is handed over."""
        keeper = asyncio.create_task(self._keep(watch_pause))
        try:
            yield self
        finally:
            self._done = True
            with contextlib.suppress(RedisError):
                # first, so a waiting taker has the shard at once (or the next run a full TTL)
                await (self.renew() if self._handed_over else self.release())
            await _stop(keeper)  # a late renewal finds the token gone and does nothing

    @property
    def active(self) -> bool:
        """Whether the holder should keep going (not lost, no pause requested)."""
        return not (self.lost.is_set() or self.paused.is_set())


PAUSE_TTL_MS = 30_000
STOP_WAIT_SECONDS = 2.0


async def _stop(task: asyncio.Task[None]) -> None:
    """Stop a background loop without trusting cancellation alone.

    A cancellation that lands while a Redis call is in flight can be swallowed under
    Python 3.11 (seen as a projector run that never ended, its lock renewed forever), so the
    loop also checks a flag after every sleep and we wait for it only so long.
    """
    task.cancel()
    await asyncio.wait({task}, timeout=STOP_WAIT_SECONDS)


@contextlib.asynccontextmanager
async def projectors_paused(
    redis: Redis, shards: int, ttl_seconds: float, timeout: float
) -> AsyncIterator[str]:
    """Stop every live projector and hold all shard locks (``medio replay``); yields our token.

    The pause key makes running projectors hand their shard over after the batch in hand and
    keeps the supervisors from queueing new ones; it expires by itself if we die.
    """
    owner = consumer_name()
    await redis.set(PAUSE_KEY, owner, px=PAUSE_TTL_MS)
    pausing = [True]

    async def keep_paused() -> None:
        while True:
            await asyncio.sleep(PAUSE_TTL_MS / 3000)
            if not pausing:
                return
            await redis.set(PAUSE_KEY, owner, px=PAUSE_TTL_MS)

    keeper = asyncio.create_task(keep_paused())
    try:
        async with contextlib.AsyncExitStack() as stack:
            for shard in range(shards):
                lock = ShardLock(redis, shard, ttl_seconds, owner)
                if not await lock.wait_acquire(timeout, ignore_pause=True):
                    raise TimeoutError(f"shard {shard} was not handed over within {timeout} s")
                await stack.enter_async_context(lock.held(watch_pause=False))
            yield owner
    finally:
        pausing.clear()
        await _stop(keeper)
        with contextlib.suppress(RedisError):
            await redis.delete(PAUSE_KEY)
