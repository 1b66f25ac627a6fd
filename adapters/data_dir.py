"""The data dir of ``medio dev``: one dataset (SQLite, the embedded Redis, the dev secret).

What it holds besides the stores, so that every ``medio`` command on this machine finds the
same dataset without a URL:

- ``dev.lock``: held (``flock``) by the one ``medio dev`` running on the data dir, with its pid
  and whether it runs the embedded Redis. The kernel releases it however that process ends,
  so a lock is never stale.
- ``redis/embedded.json``: the port the embedded Redis listens on (kept from start to start)
  and the database its data belongs to. Redis holds the command side (session ids, counters,
  resume keys) of exactly one database; paired with another database's rows it would hand out
  ids twice and mix families, so ``medio dev`` refuses that pairing (one Redis per data dir,
  one data dir per database).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
from sqlalchemy.engine import make_url

from adapters.settings import Settings, SettingsError

LOCK_FILE = "dev.lock"
RECORD_FILE = Path("redis") / "embedded.json"


class DataDirBusy(Exception):
    """Another ``medio dev`` runs on this data dir."""


class LockInfo(msgspec.Struct, frozen=True):
    pid: int
    embedded_redis: bool


class EmbeddedRecord(msgspec.Struct, frozen=True):
    """Where the embedded Redis listens and whose data it holds."""

    port: int
    database: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def database_identity(settings: Settings) -> str:
    """The database of ``settings``, without credentials: its backend, host, port and name."""
    url = make_url(settings.sqlalchemy_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:///{Path(url.database or '').expanduser().resolve()}"
    return f"{backend}://{url.host or ''}:{url.port or 5432}/{url.database or ''}"


@contextlib.contextmanager
def dev_lock(data_path: Path, embedded_redis: bool) -> Iterator[None]:
    """Hold the data dir for this ``medio dev``; ``DataDirBusy`` if another one holds it."""
    data_path.mkdir(parents=True, exist_ok=True)
    path = data_path / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock(path)
            pid = f" (pid {holder.pid})" if holder else ""
            raise DataDirBusy(
                f"another medio dev{pid} is running on data dir {data_path}; stop it, or set "
                "MEDIO_DATA_DIR to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, msgspec.json.encode(LockInfo(os.getpid(), embedded_redis)))
        yield
    finally:
        os.close(fd)  # releases the lock


def running_dev(data_path: Path) -> LockInfo | None:
    """The ``medio dev`` running on ``data_path``, if one is."""
    path = data_path / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_lock(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_lock(path: Path) -> LockInfo | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=LockInfo)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def read_record(data_path: Path) -> EmbeddedRecord | None:
    path = data_path / RECORD_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=EmbeddedRecord)
    except FileNotFoundError:
        return None
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise SettingsError(f"{path} is not what medio dev writes; move it away") from None


def write_record(data_path: Path, record: EmbeddedRecord) -> None:
    path = data_path / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(msgspec.json.encode(record))
    temporary.replace(path)


def check_pairing(record: EmbeddedRecord | None, settings: Settings) -> None:
    """Refuse to pair the embedded Redis of the data dir with another database's data."""
    database = database_identity(settings)
    if record is not None and record.database != database:
        raise SettingsError(
            f"the embedded Redis in {settings.data_path} holds the data of {record.database}, "
            f"not of {database}: set MEDIO_DATA_DIR to another folder for this database "
            "(or MEDIO_REDIS_URL)"
        )


def embedded_redis_url(settings: Settings) -> str:
    """The URL of the embedded Redis of the ``medio dev`` running on the data dir."""
    data_path = settings.data_path
    dev = running_dev(data_path)
    record = read_record(data_path)
    if dev is None or not dev.embedded_redis or record is None:
        raise SettingsError(
            f"MEDIO_REDIS_URL is not set and no medio dev with an embedded Redis is running on "
            f"data dir {data_path} (start `medio dev` there, or set MEDIO_DATA_DIR or "
            "MEDIO_REDIS_URL)"
        )
    check_pairing(record, settings)
    return record.url
