"""A ``redis-server`` and a Postgres database of a test's own, for tests that crash, restart
or fill them: ``PrivateRedis`` runs on a free port and can crash (SIGKILL) and come back on the
same port; ``migrated_database`` is a fresh database at the current revision, dropped after.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import msgspec
import redis

from adapters.settings import Settings
from medio.embedded import free_port
from medio.migrate import upgrade
from tests import scratch


class PrivateRedis:
    """A ``redis-server`` of this test's own, which can crash and come back on the same port."""

    def __init__(self, data_dir: Path, appendfsync: str | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.persistence = (
            ["--appendonly", "yes", "--appendfsync", appendfsync]
            if appendfsync
            else ["--appendonly", "no"]
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listen = ["--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            ["redis-server", *listen, "--save", "", "--dir", str(self.data_dir), *self.persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        """Crash the server if it still runs (a fixture's clean-up)."""
        if self.process is not None:
            self.crash()

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown, no final fsync
        self.process.wait()
        self.process = None


@contextmanager
def running_redis(data_dir: Path, appendfsync: str | None = None) -> Iterator[PrivateRedis]:
    """A started ``PrivateRedis``, crashed at the end if it still runs."""
    server = PrivateRedis(data_dir, appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def migrated_database(settings: Settings, purpose: str) -> AsyncIterator[str]:
    """The URL of a new database at the current revision, dropped afterwards."""
    async with scratch.throwaway_database_async(purpose) as url:
        await asyncio.to_thread(upgrade, msgspec.structs.replace(settings, database_url=url))
        yield url
