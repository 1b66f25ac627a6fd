"""The Redis ``medio dev`` uses when ``MEDIO_REDIS_URL`` is not set.

A ``redis-server`` found on PATH is spawned with AOF under the data dir; without one, an
in-process Redis-compatible server (fakeredis over TCP) serves on a free port, so a machine
with only Python runs Medio.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis
from fakeredis import TcpFakeServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    while True:
        try:
            client.ping()
            client.close()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start at {url}") from None
            time.sleep(0.05)


class EmbeddedRedis:
    """Start and stop the embedded Redis; ``url`` is where it listens."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir / "redis"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.kind = "redis-server" if shutil.which("redis-server") else "in-process"
        self._process: subprocess.Popen[bytes] | None = None
        self._server: object | None = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "redis-server":
            self._process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.data_dir),
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                    "--appendfsync",
                    "everysec",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C stops it through stop(), after the workers
            )
        else:
            server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
            # Its connection threads may sit in a blocking command (a projector waiting for
            # a shard); as daemons they do not keep ``medio dev`` alive after Ctrl-C.
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True, name="redis").start()
            self._server = server
        _wait_until_up(self.url)
        return self.url

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server = None
