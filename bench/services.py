"""Processes a benchmark starts and stops itself: Redis, a Postgres database, HTTP servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from medio.embedded import free_port
from tests import scratch
from tests.cluster import running_cluster

ROOT = Path(__file__).resolve().parent.parent


def stop_cleanly_on_sigterm() -> None:
    """Make ``SIGTERM`` (a CI timeout, ``kill``) end the benchmark as Ctrl-C does: through its
    ``finally`` blocks, which stop the servers it started and drop its database. By default
    Python dies at once on it and leaves them running."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def process(
    command: list[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    cwd: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group; wait for ``port``; stop the group after."""
    proc = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if port is not None:
            wait_for_port(port)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server (no persistence, like the machine's) on a free port."""
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server is required for the benchmarks")
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with process(command, port=port):
        yield f"redis://127.0.0.1:{port}/0"


def postgres_database() -> contextlib.AbstractContextManager[str]:
    """A database created for this benchmark run and dropped after it."""
    return scratch.throwaway_database("bench")


def migrate(env: dict[str, str]) -> None:
    """``medio migrate`` on the stores ``env`` (``MEDIO_*`` variables) names."""
    subprocess.run(
        medio_command("migrate"), env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL
    )


def medio_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "medio.cli", *args]


def bare_command(port: int, workers: int) -> list[str]:
    """The bare Litestar endpoint (``bench.bare_app``) on ``port`` with ``workers`` processes."""
    return [sys.executable, "-m", "bench.bare_app", str(port), str(workers)]


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[str]:
    """A private Redis Cluster of ``masters`` masters on free ports (the suite's own starter,
    ``tests.cluster``), without persistence like ``redis_server``; yields its URL."""
    with running_cluster(masters, appendonly=False) as cluster:
        yield cluster.url
