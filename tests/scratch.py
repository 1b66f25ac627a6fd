"""Stores of a test run or benchmark's own: a Postgres database created for it and dropped
after, and a claimed Redis database index, so no run ever touches another's data (or the data
of a running ``medio dev``).

Postgres is reached through its maintenance database at ``MEDIO_TEST_POSTGRES`` and Redis at
``MEDIO_TEST_REDIS`` (defaults: the local servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import redis

ADMIN_URL = os.environ.get("MEDIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("MEDIO_TEST_REDIS", "redis://127.0.0.1:6379")
CLAIM_KEY = "medio:test-run"  # expires: a live run holds the index
OWNER_KEY = "medio:test-owner"  # stays: the index holds test data


async def admin(*statements: str) -> None:
    """Run ``statements`` on the maintenance database, in order."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def database_url(name: str) -> str:
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def new_name(purpose: str) -> str:
    return f"medio_{purpose}_{secrets.token_hex(4)}"


async def create_database(name: str) -> str:
    await admin(f'CREATE DATABASE "{name}"')
    return database_url(name)


async def drop_database(name: str) -> None:
    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def throwaway_database(purpose: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped on exit (for code outside an event loop)."""
    name = new_name(purpose)
    url = asyncio.run(create_database(name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(name))


@contextlib.asynccontextmanager
async def throwaway_database_async(purpose: str) -> AsyncIterator[str]:
    """``throwaway_database`` for code inside an event loop."""
    name = new_name(purpose)
    url = await create_database(name)
    try:
        yield url
    finally:
        await drop_database(name)


def claim_redis_index(run_id: str) -> int:
    """An empty index, or one left behind by a run that died (owner mark, no live claim)."""
    for index in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_BASE}/{index}")
        empty = client.dbsize() == 0
        stale = not empty and client.exists(OWNER_KEY) and not client.exists(CLAIM_KEY)
        if (empty or stale) and client.set(CLAIM_KEY, run_id, nx=True, ex=3600):
            with client.pipeline(transaction=True) as pipe:
                if stale:
                    pipe.flushdb()
                    pipe.set(CLAIM_KEY, run_id, ex=3600)
                pipe.set(OWNER_KEY, "medio-tests")
                pipe.execute()
            return index
    raise RuntimeError("no free Redis database index (1-15) to claim for the test run")


def redis_index_url(index: int) -> str:
    return f"{REDIS_BASE}/{index}"


def release_redis_index(index: int) -> None:
    """Drop everything the run wrote, claim included."""
    redis.Redis.from_url(redis_index_url(index)).flushdb()
