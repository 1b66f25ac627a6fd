"""A ``medio worker``'s RQ scheduler child survives a Redis restart and dies with its worker (L14).

Each test runs a real ``medio worker`` process on a private ``redis-server`` and its own
database, and watches the scheduler child RQ forks from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from private_stores import PrivateRedis, migrated_database, running_redis

from adapters.settings import Settings
from workers.queues import MAINTENANCE

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

LOCKS = [f"rq:scheduler-lock:{MAINTENANCE}"]  # the one queue with scheduled jobs
WAIT_SECONDS = 40.0  # a worker starts in 1-2 s; much more on a loaded machine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with running_redis(tmp_path / "redis") as private:
        yield private


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[str]:
    async with migrated_database(settings, "test_scheduler") as url:
        yield url


@pytest.fixture
def worker(
    server: PrivateRedis, own_database: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "MEDIO_REDIS_URL": server.url, "MEDIO_DATABASE_URL": own_database}
    medio = Path(sys.executable).with_name("medio")
    log = (tmp_path / "worker.log").open("wb")  # kept for a failing test's report
    process = subprocess.Popen([str(medio), "worker"], env=env, stdout=log, stderr=log)
    yield process
    for child in _children(process.pid):
        child.kill()
    if process.poll() is None:
        process.kill()
    process.wait()
    log.close()
    lines = (tmp_path / "worker.log").read_text(errors="replace").splitlines()
    print("\n".join(line for line in lines if not line.startswith(" "))[:8000])  # if it failed


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _until(what: Callable[[], object], seconds: float = WAIT_SECONDS) -> object:
    deadline = time.monotonic() + seconds
    while not (found := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def _locks_held(server: PrivateRedis) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.exists(*LOCKS))
    except redis.ConnectionError:
        return 0
    finally:
        client.close()


def _scheduler(worker: subprocess.Popen[bytes], server: PrivateRedis) -> psutil.Process:
    _until(lambda: _locks_held(server) == len(LOCKS))
    (child,) = _until(lambda: _children(worker.pid))
    assert isinstance(child, psutil.Process)
    return child


def test_the_scheduler_outlives_a_redis_restart_and_takes_its_locks_again(
    worker: subprocess.Popen[bytes], server: PrivateRedis
) -> None:
    _scheduler(worker, server)
    time.sleep(1.5)  # the worker's start-up is over: the crash meets its running loops
    server.crash()
    time.sleep(2.5)  # a few scheduler rounds against no Redis
    server.start()  # empty (--appendonly no): the locks are gone with it
    _until(lambda: _locks_held(server) == len(LOCKS))  # a live scheduler holds them again
    (scheduler,) = _children(worker.pid)
    assert scheduler.is_running() and scheduler.status() != psutil.STATUS_ZOMBIE
    assert worker.poll() is None


def test_the_scheduler_dies_with_its_worker_and_releases_its_locks(
    worker: subprocess.Popen[bytes], server: PrivateRedis
) -> None:
    scheduler = _scheduler(worker, server)
    worker.kill()  # SIGKILL: the worker cannot stop its child itself
    worker.wait()
    gone, _alive = psutil.wait_procs([scheduler], timeout=5)
    assert gone, "the scheduler outlived its worker"
    assert _locks_held(server) == 0
