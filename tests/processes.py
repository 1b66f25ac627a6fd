"""``medio`` commands run as processes of their own by a test, and waiting until they answer.

``start_medio`` runs a subcommand on the environment given (quiet); ``wait_until`` polls a
check, an HTTP error counting as "not yet"; ``stop_all`` ends the processes still running and
waits for each, after a failed assertion too. ``medio_env_on_cluster`` is the environment of
``medio`` processes on a private Redis Cluster (``tests/cluster.py``) and a database of their
own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping

import httpx

from tests.cluster import Cluster


def start_medio(env: Mapping[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``medio <args>`` on ``env``, its output discarded."""
    return subprocess.Popen(
        [sys.executable, "-m", "medio.cli", *args],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(check: Callable[[], bool], what: str, seconds: float, pause: float = 0.2) -> None:
    """Until ``check()`` is true (an HTTP error counts as false), or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise AssertionError(f"{what} not reached in {seconds} s")


def stop_all(processes: Iterable[subprocess.Popen[bytes]], seconds: float) -> None:
    """``SIGTERM`` to those still running, then wait for every one."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait(seconds)


def medio_env_on_cluster(
    running: Cluster, database: str, test_env: Mapping[str, str], shards: int
) -> dict[str, str]:
    """``medio`` on ``running`` with ``shards`` stream shards and ``database``; its job queues on
    this run's single Redis (in a cluster run the suite's own queue index): RQ does not run on a
    cluster."""
    return {
        **os.environ,
        "MEDIO_DATABASE_URL": database,
        "MEDIO_REDIS_URL": running.url,
        "MEDIO_REDIS_CLUSTER": "true",
        "MEDIO_QUEUE_URL": test_env.get("MEDIO_QUEUE_URL") or test_env["MEDIO_REDIS_URL"],
        "MEDIO_STREAM_SHARDS": str(shards),
        "MEDIO_PROJECTOR_RUN_SECONDS": "3",
    }
