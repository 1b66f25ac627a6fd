"""Jobs of one worker process share a loop and a container, and an interrupted job lets go.

The worker runs jobs in its own process (no work horse), so what a killed horse used to
guarantee is the job loop's to keep: a job RQ times out is cancelled and gives its shard
back, and one that ignores the cancellation takes its loop down with it rather than keep
renewing its lock.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from redis import Redis
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from adapters.container import Container
from adapters.settings import Settings
from projections.locks import ShardLock, lock_key
from workers import job_loop as job_loop_module
from workers.job_loop import JobLoop, Work, job_loop, stop_job_loop

SHARD = 97  # a lock no other test takes


@pytest.fixture
def jobs(settings: Settings) -> Iterator[JobLoop]:
    loop = JobLoop(settings)
    yield loop
    loop.stop()


@pytest.fixture
def redis(settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    client.delete(lock_key(SHARD))
    yield client
    client.delete(lock_key(SHARD))
    client.close()


async def _backend(container: Container) -> tuple[int, int]:
    """The job's event loop and the Postgres backend its connection talks to."""
    async with container.engine.connect() as conn:
        backend = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return id(asyncio.get_running_loop()), int(backend)


def test_jobs_share_one_loop_and_database_connection(jobs: JobLoop) -> None:
    assert jobs.run(_backend) == jobs.run(_backend)


def _hold_the_shard(holding: threading.Event, ignore_cancel: bool = False) -> Work[None]:
    async def work(container: Container) -> None:
        lock = ShardLock(container.redis, SHARD, ttl_seconds=5.0, owner="stuck-job")
        assert await lock.acquire()
        async with lock.held():
            holding.set()
            while True:
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    if not ignore_cancel:
                        raise

    return work


def test_timed_out_job_is_cancelled_and_gives_its_shard_back(jobs: JobLoop, redis: Redis) -> None:
    holding = threading.Event()
    penalty = UnixSignalDeathPenalty(1, JobTimeoutException)  # what RQ runs a job under
    with pytest.raises(JobTimeoutException), penalty:
        jobs.run(_hold_the_shard(holding))
    assert holding.is_set()
    assert redis.get(lock_key(SHARD)) is None
    assert jobs.alive
    assert jobs.run(_backend)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the stuck job
def test_job_ignoring_its_cancellation_takes_its_loop_down(
    settings: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_loop_module, "ABANDON_SECONDS", 0.3)
    stuck = job_loop(settings)
    holding = threading.Event()
    try:
        penalty = UnixSignalDeathPenalty(1, JobTimeoutException)
        with pytest.raises(JobTimeoutException), penalty:
            stuck.run(_hold_the_shard(holding, ignore_cancel=True))
        assert holding.is_set()
        assert not stuck.alive  # nothing renews the lock any more: it expires
        assert redis.pttl(lock_key(SHARD)) <= 5000
        fresh = job_loop(settings)
        assert fresh is not stuck
        assert fresh.run(_backend)
    finally:
        stop_job_loop()
        del stuck
        gc.collect()  # the stuck job's coroutine goes now, not in some later test
