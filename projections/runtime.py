"""Running projectors: a bounded run under the shard lock (the RQ job's), or a drain (tests).

``run_projector`` is what a projector job runs for each shard of its worker's share
(``workers.balancer``): take the shard's lock (or the one its worker's previous job handed
over), read and project for a bounded time, give the lock back or hand it to the next job.
``project_pending`` projects everything appended so far on every shard, in this process, and
returns; tests use it to wait for projections without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from adapters import heap
from adapters.container import Container
from adapters.settings import Settings
from projections.apply import ProjectionSet
from projections.locks import ShardLock, consumer_name, projectors_paused
from projections.projector import ShardProjector
from projections.recovery import ensure_current
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS

MAX_BLOCK_SECONDS = 1.0
STOP_CHECK_SECONDS = 0.5  # a run waiting for its shard's lock sees a stop request this soon
CATCH_UP_HANDOVER_SECONDS = 30.0  # how long running projectors get to hand their shards over


def registered_projections(
    scratch: bool = False, settings: Settings | None = None
) -> ProjectionSet:
    """Every registered projection, built on live (or scratch) storage."""
    return ProjectionSet(
        sql=[cls(scratch=scratch) for cls in SQL_PROJECTIONS],
        redis=[cls(scratch=scratch, settings=settings) for cls in REDIS_PROJECTIONS],
    )


def _projector(
    container: Container, shard: int, consumer: str, projections: ProjectionSet | None
) -> ShardProjector:
    return ShardProjector(
        container.redis,
        container.engine,
        shard,
        projections or registered_projections(settings=container.settings),
        consumer,
        batch_size=container.settings.projector_batch_size,
        ahead=True,
    )


async def run_projector(
    container: Container,
    shard: int,
    seconds: float | None = None,
    consumer: str | None = None,
    projections: ProjectionSet | None = None,
    wait_seconds: float = 0.0,
    stopping: Callable[[], bool] = lambda: False,
    adopt: bool = False,
    hand_over: bool = False,
) -> int | None:
    """Project ``shard`` for ``seconds``; the events projected, or None if it is held elsewhere.

    Waits up to ``wait_seconds`` for the lock. With ``adopt`` the lock is one an earlier run
    handed over under ``consumer``: it is renewed, never taken afresh, so a token that once let
    go never holds the shard again. The run ends after ``seconds`` (default
    ``MEDIO_PROJECTOR_RUN_SECONDS``), once ``stopping()`` (after its current step: the worker is
    shutting down or gives the shard up), or when the lock is lost or a pause (``medio replay``)
    is asked for. With ``hand_over``, a run that ends on its time keeps the lock for a TTL
    instead of releasing it, for the next run under ``consumer`` to adopt.
    """
    settings = container.settings
    await ensure_current(container)  # a restarted Redis is checked against the archive first
    consumer = consumer or consumer_name()
    lock = ShardLock(container.redis, shard, settings.projector_lock_ttl_seconds, consumer)
    if not await (lock.renew() if adopt else _acquire(lock, wait_seconds, stopping)):
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (settings.projector_run_seconds if seconds is None else seconds)
    block_seconds = min(MAX_BLOCK_SECONDS, settings.projector_lock_ttl_seconds / 3)
    async with lock.held():
        projector = _projector(container, shard, consumer, projections)
        try:
            await projector.start()
            with heap.frozen():
                await _project_until(projector, lock, deadline, block_seconds, stopping)
            if hand_over and lock.active and not stopping():
                lock.hand_over()
        finally:
            await projector.close()
        return projector.applied


async def _acquire(lock: ShardLock, wait_seconds: float, stopping: Callable[[], bool]) -> bool:
    """``lock.wait_acquire`` in slices, so a worker asked to stop does not wait on for the
    lock (up to ``wait_seconds``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while not stopping():
        left = deadline - loop.time()
        if await lock.wait_acquire(timeout=max(0.0, min(left, STOP_CHECK_SECONDS))):
            return True
        if left <= STOP_CHECK_SECONDS:
            return False
    return False


async def _project_until(
    projector: ShardProjector,
    lock: ShardLock,
    deadline: float,
    block_seconds: float,
    stopping: Callable[[], bool],
) -> None:
    """Step while the lock is held, time is left and no stop is asked."""
    loop = asyncio.get_running_loop()
    while lock.active and not stopping():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await projector.step(block_ms=max(1, int(min(block_seconds, remaining) * 1000)))


async def project_pending(
    container: Container, timeout: float = 30.0, projections: ProjectionSet | None = None
) -> int:
    """Project everything appended so far on every shard, in this process; returns the count.

    Waits for a running projector to hand its shard over (up to ``timeout``) and raises
    ``TimeoutError`` if the shards cannot be drained in that time (e.g. a store is down).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await ensure_current(container)
    applied = 0
    for shard in range(container.settings.stream_shards):
        consumer = consumer_name()
        lock = ShardLock(
            container.redis, shard, container.settings.projector_lock_ttl_seconds, consumer
        )
        if not await lock.wait_acquire(deadline - loop.time(), ignore_pause=True):
            raise TimeoutError(f"shard {shard} is held by another projector")
        async with lock.held(watch_pause=False):
            applied += await drain_shard(container, shard, consumer, projections, deadline)
    return applied


async def drain_shard(
    container: Container,
    shard: int,
    consumer: str,
    projections: ProjectionSet | None = None,
    deadline: float | None = None,
) -> int:
    """Project ``shard`` until nothing is left (caller holds its lock under ``consumer``)."""
    loop = asyncio.get_running_loop()
    projector = _projector(container, shard, consumer, projections)
    try:
        await projector.start()
        with heap.frozen():
            while True:
                handled = await projector.step(block_ms=None)
                if not handled and not projector.backlog:
                    return projector.applied
                if deadline is not None and loop.time() > deadline:
                    raise TimeoutError(f"shard {shard} did not drain in time")
    finally:
        await projector.close()


@contextlib.asynccontextmanager
async def projectors_caught_up(container: Container) -> AsyncIterator[str]:
    """Every live projector paused and every shard drained (an erasure, a retention run):
    nothing of the log is unprojected or in flight until the block ends; yields our token."""
    settings = container.settings
    async with projectors_paused(
        container.redis,
        settings.stream_shards,
        settings.projector_lock_ttl_seconds,
        CATCH_UP_HANDOVER_SECONDS,
    ) as owner:
        for shard in range(settings.stream_shards):
            await drain_shard(container, shard, owner)
        yield owner
