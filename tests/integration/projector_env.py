"""An event log and database of a test's own, for projector tests that count every event.

The session's shared database and Redis index see other tests' events and direct writes;
tests that assert "archive count = appended count" or "live = clean replay" need stores
nothing else touches. ``isolated_stack`` creates a database and claims an empty Redis index,
and drops both afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import redis

from medio.migrate import upgrade
from medio.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "MEDIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("MEDIO_TEST_REDIS", "redis://127.0.0.1:6379")
CLAIM_KEY = "medio:test-run"


@dataclass(frozen=True)
class Stack:
    """Settings of the isolated stores, and the environment a subprocess needs to use them."""

    settings: Settings
    env: dict[str, str]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _claim_redis_index(tag: str) -> int:
    for index in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_BASE}/{index}")
        if client.dbsize() == 0 and client.set(CLAIM_KEY, tag, nx=True, ex=3600):
            return index
    raise RuntimeError("no empty Redis database index (1-15) to claim")


@contextlib.contextmanager
def isolated_stack(sqlite_dir: str | None = None, **settings: Any) -> Iterator[Stack]:
    """A fresh database (Postgres, or SQLite under ``sqlite_dir``) and Redis index, migrated."""
    tag = secrets.token_hex(4)
    database = f"medio_test_{tag}_projector"
    if sqlite_dir:
        database_url = f"sqlite:///{sqlite_dir}/medio-{tag}.db"
    else:
        asyncio.run(_admin(f'CREATE DATABASE "{database}"'))
        database_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    index = _claim_redis_index(tag)
    redis_url = f"{REDIS_BASE}/{index}"
    base = load_settings(env_file=None)
    built = msgspec.structs.replace(
        base, database_url=database_url, redis_url=redis_url, **settings
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIO_")}
    env.update(
        {
            f"MEDIO_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in msgspec.to_builtins(built).items()
            if v is not None
        }
    )
    try:
        upgrade(built)
        yield Stack(built, env)
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        if not sqlite_dir:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
