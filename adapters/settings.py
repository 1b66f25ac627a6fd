"""Typed settings read from ``MEDIO_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from dotenv import dotenv_values

PREFIX = "MEDIO_"
MIN_SECRET_LENGTH = 32
MASTER_KEY_BYTES = 32
MIN_RETENTION_DAYS = 31  # longer than a resume position lives
DEFAULT_DATA_DIR = "var"
# What makes a folder a Medio data dir (see find_data_dir).
DATA_DIR_MARKERS = ("medio.db", "jwt-secret", "redis")
DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message says which and why."""


class RateLimit(msgspec.Struct, frozen=True):
    """A ``requests/seconds`` policy such as ``100/900``."""

    requests: int
    seconds: int

    @classmethod
    def parse(cls, name: str, text: str) -> RateLimit:
        try:
            requests, seconds = (int(part) for part in text.split("/"))
        except ValueError:
            raise SettingsError(f"{name} must look like 100/900, got {text!r}") from None
        if requests < 1 or seconds < 1:
            raise SettingsError(f"{name} must have positive numbers, got {text!r}")
        return cls(requests, seconds)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting Medio reads, with its default. Field ``x`` comes from ``MEDIO_X``."""

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    api_workers: int = 1
    data_dir: str = "./var"
    database_url: str | None = None
    redis_url: str | None = None
    # MEDIO_REDIS_URL names any node of a Redis Cluster; every key a command or script touches
    # together shares its shard's hash tag (docs/architecture.md, "Redis keys").
    redis_cluster: bool = False
    # RQ's Redis (the job queues). RQ does not run on a Redis Cluster, so in cluster mode this is
    # a plain Redis of its own; otherwise it defaults to MEDIO_REDIS_URL.
    queue_url: str | None = None
    jwt_secret: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    media_root: str | None = None
    stream_shards: int = 1
    heartbeat_max_gap_seconds: int = 90
    session_timeout_seconds: int = 180
    time_request_cooldown_seconds: int = 600  # after a denial, no new request for this long
    max_video_bytes: int = 500 * 1024 * 1024
    max_thumbnail_bytes: int = 5 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    body_idle_timeout_seconds: float = 10.0  # no body bytes for this long: 408
    json_body_timeout_seconds: float = 30.0  # a JSON body not complete after this long: 408
    upload_timeout_seconds: float = 3600.0  # an upload body not complete after this long: 408
    rate_limit_enabled: bool = True
    rate_limit_general: str = "100/900"
    rate_limit_telemetry: str = "1200/900"
    rate_limit_public: str = "10/60"
    trusted_proxies: str = ""
    cors_origins: str | None = None  # None: localhost origins in development, none otherwise
    cors_credentials: bool = False
    csrf_cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    read_your_writes_timeout_ms: int = 1000
    max_connections_per_ip: int = 64  # open connections one address may hold per API process
    default_timezone: str = "UTC"
    projector_batch_size: int = 2000
    max_titles_per_user: int = 1000  # resume entries (and tombstones) kept per user
    projector_run_seconds: float = 10.0
    projector_lock_ttl_seconds: float = 5.0
    log_level: str = "INFO"
    access_log: bool = True
    # Wraps every privacy key (adapters.keyring): 32 bytes, URL-safe base64. Outside
    # production one is made once and kept under the data dir.
    master_key: str | None = None
    retention_days: int = 0  # 0: keep events' personal data; else shred it after this many days
    # Postgres archive partitions (adapters.archive_partitions): positions per new partition,
    # and how many empty partitions the ``archive-partitions`` job keeps ahead of the newest row.
    archive_partition_size: int = 10_000_000
    archive_partitions_ahead: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"MEDIO_PORT must be 1-65535, got {self.port}")
        if self.read_your_writes_timeout_ms < 0:
            raise SettingsError("MEDIO_READ_YOUR_WRITES_TIMEOUT_MS must be 0 or more")
        if self.stream_shards < 1:
            raise SettingsError("MEDIO_STREAM_SHARDS must be at least 1")
        if self.max_titles_per_user < 1:
            raise SettingsError("MEDIO_MAX_TITLES_PER_USER must be at least 1")
        for name in ("general", "telemetry", "public"):
            RateLimit.parse(f"MEDIO_RATE_LIMIT_{name.upper()}", getattr(self, f"rate_limit_{name}"))
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"MEDIO_DEFAULT_TIMEZONE is not an IANA zone: {self.default_timezone!r}"
            ) from None
        if self.database_url is not None:
            _check_database_url(self.database_url)
        if self.redis_cluster and not self.redis_url:
            raise SettingsError("MEDIO_REDIS_CLUSTER=true needs MEDIO_REDIS_URL: any node")
        if self.redis_cluster and not self.queue_url:
            raise SettingsError(
                "MEDIO_REDIS_CLUSTER=true needs MEDIO_QUEUE_URL: a plain (non-cluster) Redis "
                "for the job queues, since RQ does not run on a Redis Cluster"
            )
        if self.retention_days < 0 or 0 < self.retention_days < MIN_RETENTION_DAYS:
            raise SettingsError(
                f"MEDIO_RETENTION_DAYS must be 0 (keep) or at least {MIN_RETENTION_DAYS}: "
                "resume positions are kept 30 days (CONTRACT §4)"
            )
        if self.archive_partition_size < 1000:
            raise SettingsError("MEDIO_ARCHIVE_PARTITION_SIZE must be at least 1000 positions")
        if self.archive_partitions_ahead < 1:
            raise SettingsError("MEDIO_ARCHIVE_PARTITIONS_AHEAD must be at least 1")
        weak_secret = len(self.jwt_secret or "") < MIN_SECRET_LENGTH
        if self.env == "production" and weak_secret and not self.jwt_jwks_url:
            raise SettingsError(
                f"MEDIO_JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters in "
                "production (make one: python -c 'import secrets;print(secrets.token_urlsafe(48))')"
            )
        if self.master_key is not None:
            _check_master_key(self.master_key)
        elif self.env == "production":
            raise SettingsError(
                "MEDIO_MASTER_KEY must be set in production: it wraps every family's data key "
                "(make one: python -c 'import base64,os;print(base64.urlsafe_b64encode("
                "os.urandom(32)).decode())'; keep it apart from database backups)"
            )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def media_path(self) -> Path:
        return (
            Path(self.media_root).expanduser().resolve()
            if self.media_root
            else self.data_path / "media"
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The async driver URL: Postgres through asyncpg, else embedded SQLite."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.data_path / 'medio.db'}"
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    def rate_limit(self, policy: Literal["general", "telemetry", "public"]) -> RateLimit:
        return RateLimit.parse(policy, getattr(self, f"rate_limit_{policy}"))

    def signing_secret(self) -> str:
        """The HS256 secret; in development one is made once and kept under the data dir."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.env == "production":
            raise SettingsError("MEDIO_JWT_SECRET is not set")
        path = self.data_path / "jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def master_key_bytes(text: str) -> bytes | None:
    """The 32 bytes a ``MEDIO_MASTER_KEY`` value encodes, or ``None`` if it is not that."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode() + b"==")
    except (ValueError, binascii.Error):
        return None
    return key if len(key) == MASTER_KEY_BYTES else None


def _check_master_key(text: str) -> None:
    # The message never repeats the value: it is a secret.
    if master_key_bytes(text) is None:
        raise SettingsError(
            f"MEDIO_MASTER_KEY must be {MASTER_KEY_BYTES} bytes in URL-safe base64 "
            f"({MASTER_KEY_BYTES * 4 // 3 + 1} characters)"
        )


def _check_database_url(url: str) -> None:
    """A URL Medio cannot use fails here, naming the variable, not as a driver's traceback."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in DATABASE_SCHEMES or not rest.strip("/"):
        raise SettingsError(
            "MEDIO_DATABASE_URL must look like postgresql://user@host:5432/db or "
            f"sqlite:///path/medio.db, got {_without_password(url)!r}"
        )


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, _, host = rest.partition("@")
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def find_data_dir(start: Path | None = None) -> Path:
    """The data dir when ``MEDIO_DATA_DIR`` is not set: the nearest ``var/`` holding Medio data,
    from the working directory up (as git finds ``.git``), else ``./var``.

    So ``medio token create`` or ``medio replay`` run from a subfolder find the secret and the
    stores of the ``medio dev`` started at the project's top, instead of making new ones.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_DATA_DIR
        if any((candidate / marker).exists() for marker in DATA_DIR_MARKERS):
            return candidate
    return here / DEFAULT_DATA_DIR


def _environment(env_file: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if env_file and Path(env_file).exists():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return {
        k[len(PREFIX) :].lower(): v for k, v in values.items() if k.startswith(PREFIX) and v != ""
    }


def load_settings(env_file: str | None = ".env", **overrides: Any) -> Settings:
    """Read, convert and validate settings; raise ``SettingsError`` with a readable message."""
    raw: dict[str, object] = dict(_environment(env_file))
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" not in raw:
        raw["data_dir"] = str(find_data_dir())
    known = set(Settings.__struct_fields__)
    try:
        return msgspec.convert({k: v for k, v in raw.items() if k in known}, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "at `$." in message:
            field = message.rsplit("$.", 1)[-1].rstrip("`")
            message = f"MEDIO_{field.upper()}: {message}"
        raise SettingsError(message) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
