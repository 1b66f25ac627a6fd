"""``medio dev``: the whole of Medio on one machine, started and stopped in order.

Start: hold the data dir (one ``medio dev`` per data dir), check the API's port, check the
configured Redis answers (or that the embedded one holds this database's data), migrate the
database, start the embedded Redis, then the workers and the API. Every step that can fail
does so before the next starts, with one line naming the cause and a non-zero exit; nothing is
left running.

Stop (Ctrl-C, SIGTERM, or SIGHUP when the terminal closes): the children run in sessions of
their own, so only ``medio dev`` gets the signal and stops them in order: the API and the
workers (a projector gives its run up at once, ``workers.worker``), then Redis, which syncs its
append-only file. Each child dies with ``medio dev`` however it ends (``adapters.lifeline``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import click
import msgspec
import redis
from sqlalchemy.exc import SQLAlchemyError

from adapters.data_dir import (
    EmbeddedRecord,
    check_pairing,
    database_identity,
    dev_lock,
    read_record,
    write_record,
)
from adapters.lifeline import die_with_parent
from adapters.settings import Settings
from medio.cli_errors import first_line
from medio.embedded import EmbeddedRedis, free_port, port_free
from medio.migrate import migrate_redis, upgrade

STOP_SECONDS = 3.0  # then whatever is left is killed; with Redis's own stop, within 5 s
POLL_SECONDS = 0.1


class StartFailed(Exception):
    """``medio dev`` cannot start; the message names the cause in one line."""


def say(message: str, err: bool = False) -> None:
    """A line on the terminal, if there still is one (after SIGHUP there is not)."""
    with contextlib.suppress(OSError):
        click.echo(f"medio: {message}", err=err)


def redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class DevRun:
    """One ``medio dev``: what it started, to stop it in order."""

    settings: Settings
    redis: EmbeddedRedis | None = None
    children: list[Child] = field(default_factory=list)
    stop_signal: list[int] = field(default_factory=list)

    def check_redis(self) -> None:
        """Before migrating: the configured Redis answers, or the embedded one is ours."""
        settings = self.settings
        if settings.redis_url:
            _check_redis(settings.redis_url)
        else:
            check_pairing(read_record(settings.data_path), settings)

    def start_redis(self) -> None:
        """The embedded Redis, bound to this database (once it is known to work)."""
        settings = self.settings
        if settings.redis_url:
            return
        data_path = settings.data_path
        record = read_record(data_path)
        server = EmbeddedRedis(data_path, record.port if record else free_port())
        server.stop_leftover()
        if not port_free("127.0.0.1", server.port):  # taken by another program meanwhile
            server = EmbeddedRedis(data_path, free_port())
        write_record(data_path, EmbeddedRecord(server.port, database_identity(settings)))
        self.redis = server
        server.start()
        os.environ["MEDIO_REDIS_URL"] = server.url  # for the workers and the API
        say(f"embedded Redis ({server.kind}, AOF in {server.dir}) on {server.url}")

    def migrate(self) -> None:
        try:
            upgrade(self.settings)
        except (SQLAlchemyError, OSError) as exc:
            raise StartFailed(
                f"the database at {redacted(self.settings.sqlalchemy_url)} could not be "
                f"migrated: {first_line(exc)}"
            ) from None
        say(f"database ready ({redacted(self.settings.sqlalchemy_url)})")

    def migrate_keys(self) -> None:
        """Rename an older Medio's Redis keys to their shard-tagged names (once)."""
        url = os.environ.get("MEDIO_REDIS_URL") or self.settings.redis_url  # embedded: set now
        try:
            moved = migrate_redis(msgspec.structs.replace(self.settings, redis_url=url))
        except (redis.RedisError, OSError) as exc:
            raise StartFailed(f"Redis keys could not be migrated: {first_line(exc)}") from None
        if moved:
            say(f"renamed {moved} Redis keys of an older Medio to their shard-tagged names")

    def start_children(self, worker_count: int | None) -> None:
        settings = self.settings
        count = worker_count or settings.stream_shards + 1
        # -P: the children import the Medio this process runs, not a ``medio/`` folder that
        # happens to be in the working directory (another checkout's, say)
        command = [sys.executable, "-P", "-m", "medio.cli"]
        api = [*command, "api", "--host", settings.host, "--port", str(settings.port)]
        for number in range(count):
            self.children.append(Child(f"worker {number + 1}", _spawn([*command, "worker"])))
        self.children.append(Child("API", _spawn(api)))
        say(f"{count} worker(s) started")
        say(f"API on http://{settings.host}:{settings.port}  (Ctrl-C stops everything)")
        say("get a token with: medio token create --sub <your-user-id>")

    def catch_stop_signals(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._request_stop)

    def watch(self) -> int:
        """Until a stop signal (exit code 0) or a child's exit (1)."""
        while not self.stop_signal:
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    say(f"the {child.name} exited (code {code}); stopping", err=True)
                    return 1
            time.sleep(POLL_SECONDS)
        return 0

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_signal.append(signum)

    def stop(self) -> None:
        """Stop the API and the workers, then Redis; kill what lingers past ``STOP_SECONDS``."""
        started = time.monotonic()
        if not self.children:  # a failed start: its one line says enough
            if self.redis is not None:
                self.redis.stop()
            return
        running = [c for c in self.children if c.process.poll() is None]
        if running:
            say(f"stopping {', '.join(c.name for c in running)}")
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = started + STOP_SECONDS
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"the {child.name} did not stop in time; killed it", err=True)
                child.process.kill()
                child.process.wait()
        if self.redis is not None:
            say(f"stopping the embedded Redis (syncing its AOF in {self.redis.dir})")
            self.redis.stop()
        say(f"stopped in {time.monotonic() - started:.1f} s")


def run_dev(settings: Settings, worker_count: int | None) -> int:
    """Run ``medio dev`` until stopped; its exit code. ``StartFailed``/``SettingsError``/
    ``DataDirBusy``/``EmbeddedRedisError`` when it cannot start (nothing is left running)."""
    os.environ["MEDIO_DATA_DIR"] = str(settings.data_path)  # the children use the same one
    with dev_lock(settings.data_path, embedded_redis=not settings.redis_url):
        if not port_free(settings.host, settings.port):
            raise StartFailed(
                f"port {settings.port} on {settings.host} is in use: stop what listens there, "
                "or choose another with --port or MEDIO_PORT"
            )
        run = DevRun(settings)
        run.catch_stop_signals()
        try:
            run.check_redis()
            run.migrate()
            run.start_redis()
            run.migrate_keys()
            run.start_children(worker_count)
            return run.watch()
        finally:
            run.stop()


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        start_new_session=True,  # the terminal's Ctrl-C and SIGHUP reach medio dev only
        preexec_fn=die_with_parent(signal.SIGKILL),
    )


def _check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartFailed(f"Redis at {redacted(url)} is unreachable: {first_line(exc)}") from None
    finally:
        client.close()
