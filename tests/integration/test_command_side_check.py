"""The check of Redis against the archive: once per Redis server run, by one process (H2)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from private_stores import PrivateRedis, migrated_database, running_redis

from adapters.container import Container
from adapters.settings import Settings
from projections.recovery import ensure_current
from projections.redis_batch import run_batch
from projections.redis_generation import CHECKED_KEY, RedisNotChecked, is_checked
from services.container import build_container

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with running_redis(tmp_path / "redis") as private:
        yield private


@pytest.fixture
async def own(settings: Settings, server: PrivateRedis) -> AsyncIterator[Settings]:
    async with migrated_database(settings, "test_check") as url:
        yield msgspec.structs.replace(settings, database_url=url, redis_url=server.url)


@pytest.fixture
async def stores(own: Settings) -> AsyncIterator[Container]:
    container = build_container(own)
    yield container
    await container.close()


async def test_a_redis_server_run_is_checked_once_and_a_restart_checks_again(
    stores: Container, server: PrivateRedis
) -> None:
    assert not await is_checked(stores.redis)
    assert await ensure_current(stores) is not None
    assert await ensure_current(stores) is None  # the same run: one INFO and one GET
    server.crash()
    server.start()
    await stores.redis.set(CHECKED_KEY, "the run before")  # as if kept by the AOF
    assert not await is_checked(stores.redis)
    assert await ensure_current(stores) is not None


async def test_many_processes_at_once_check_a_restarted_redis_once(
    own: Settings, stores: Container
) -> None:
    others = [build_container(own) for _ in range(4)]
    try:
        reports = await asyncio.gather(*(ensure_current(c) for c in [stores, *others]))
    finally:
        for container in others:
            await container.close()
    assert sum(report is not None for report in reports) == 1


async def test_a_live_projector_commit_waits_for_the_check_after_a_restart(
    stores: Container, server: PrivateRedis
) -> None:
    await ensure_current(stores)
    commit = {"checkpoints": {"medio:checkpoint:test:{0}": "0-0"}, "upto": "1-0"}
    assert (await run_batch(stores.redis, [("SET", "k", "v")], **commit)).applied
    server.crash()
    server.start()  # a new run: no scripts, and not checked
    with pytest.raises(RedisNotChecked):
        await run_batch(stores.redis, [("SET", "k", "v")], **commit)
    assert await stores.redis.get("k") is None
    await ensure_current(stores)
    assert (await run_batch(stores.redis, [("SET", "k", "v")], **commit)).applied
