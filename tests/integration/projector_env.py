"""An event log and database of a test's own, for projector tests that count every event.

The session's shared database and Redis index see other tests' events and direct writes;
tests that assert "archive count = appended count" or "live = clean replay" need stores
nothing else touches. ``isolated_stack`` creates a database and claims an empty Redis index,
and drops both afterwards; ``start_worker`` and ``kill_9`` run real ``medio worker`` processes
on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import psutil
import sqlalchemy as sa

from adapters.container import Container
from adapters.settings import Settings, load_settings
from adapters.tables import events
from medio.migrate import upgrade
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from tests import scratch


async def archived_count(container: Container) -> int:
    """How many events the archive holds."""
    async with container.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar())


async def projection_snapshot(container: Container) -> dict[str, Any]:
    """Every projection's dump by name: equal snapshots, equal read models."""
    state: dict[str, Any] = {}
    async with container.engine.connect() as conn:
        for cls in SQL_PROJECTIONS:
            state[cls.name] = await cls().dump(conn)
    for rcls in REDIS_PROJECTIONS:
        state[rcls.name] = await rcls().dump(container.redis)
    return state


@dataclass(frozen=True)
class Stack:
    """Settings of the isolated stores, and the environment a subprocess needs to use them."""

    settings: Settings
    env: dict[str, str]


@contextlib.contextmanager
def isolated_stack(sqlite_dir: str | None = None, **settings: Any) -> Iterator[Stack]:
    """A fresh database (Postgres, or SQLite under ``sqlite_dir``) and Redis index, migrated."""
    database = scratch.new_name("test_projector")
    index = scratch.claim_redis_index(database)
    if sqlite_dir:
        database_url = f"sqlite:///{sqlite_dir}/{database}.db"
    else:
        database_url = asyncio.run(scratch.create_database(database))
    redis_url = scratch.redis_index_url(index)
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
        scratch.release_redis_index(index)
        if not sqlite_dir:
            asyncio.run(scratch.drop_database(database))


def start_worker(stack: Stack) -> subprocess.Popen[bytes]:
    """A ``medio worker`` process on the stack's stores."""
    return subprocess.Popen(
        [sys.executable, "-m", "medio.cli", "worker"],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_9(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker (its projectors run in it) and its children (RQ's scheduler)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(worker.pid)
        for process in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
    worker.wait()
