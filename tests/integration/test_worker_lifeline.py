"""A ``medio worker`` killed with ``kill -9`` takes its RQ scheduler process with it.

RQ forks the scheduler from the worker; without ``adapters.lifeline`` it outlived a killed worker,
orphaned, holding the scheduler locks. Its own Redis (the wheel's Valkey) and SQLite: a real
worker must not take jobs from the shared test Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psutil
import pytest

from adapters.settings import Settings
from medio.embedded import EmbeddedRedis, free_port, valkey_server
from medio.migrate import upgrade


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path, free_port(), binary=valkey_server())
    try:
        yield server.start()
    finally:
        server.stop()


def test_a_killed_worker_leaves_no_scheduler_behind(
    settings: Settings, private_redis: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    upgrade(msgspec.structs.replace(settings, database_url=None, data_dir=str(data_dir)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env.update({"MEDIO_REDIS_URL": private_redis, "MEDIO_DATA_DIR": str(data_dir)})
    worker = subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    scheduler: psutil.Process | None = None
    try:
        process = psutil.Process(worker.pid)
        deadline = time.monotonic() + 20
        while not process.children():
            assert time.monotonic() < deadline, "the worker started no scheduler"
            time.sleep(0.1)
        scheduler = process.children()[0]
        worker.kill()
        worker.wait()
        _gone, alive = psutil.wait_procs([scheduler], timeout=10)
        assert not alive, "the scheduler outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if scheduler is not None and scheduler.is_running():
            scheduler.kill()
