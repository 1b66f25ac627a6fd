"""Test harness: a Postgres database and a Redis index created for this run and dropped after.

Tests never touch the data of a running ``medio dev``: the database is ``medio_test_<random>``
and the Redis index is one found empty and claimed for the run.

With ``MEDIO_TEST_REDIS_CLUSTER=1`` the run's Redis is a private 3-master Redis Cluster started
for it (``tests/cluster.py``), with 4 stream shards spread over the masters; the job queues stay
on the claimed index of the single Redis (``MEDIO_QUEUE_URL``: RQ does not run on a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container
from adapters.settings import Settings, load_settings
from api.app import create_app
from api.auth import Role, create_token
from medio.migrate import upgrade
from projections.runtime import project_pending
from services.container import build_container
from tests import cluster, scratch

CLUSTER_RUN = os.environ.get("MEDIO_TEST_REDIS_CLUSTER") == "1"


@pytest.fixture(scope="session", autouse=True)
def test_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``MEDIO_*`` variables of this run's own database, Redis index and data dir.

    Set for every test, before any module's own fixtures: settings built from the environment
    by a fixture that does not ask for this one would otherwise find the defaults, such as
    ``./var`` (the data dir, and master key, of a ``medio dev`` in the checkout)."""
    database = scratch.new_name("test")
    index = scratch.claim_redis_index(database)  # first: a run without an index leaves no db
    stack = contextlib.ExitStack()
    redis_env = {"MEDIO_REDIS_URL": scratch.redis_index_url(index)}
    if CLUSTER_RUN:
        running = stack.enter_context(cluster.running_cluster())
        redis_env = {
            "MEDIO_REDIS_URL": running.url,
            "MEDIO_REDIS_CLUSTER": "true",
            "MEDIO_QUEUE_URL": scratch.redis_index_url(index),
            "MEDIO_STREAM_SHARDS": "4",
        }
    env = {
        "MEDIO_ENV": "test",
        "MEDIO_DATABASE_URL": asyncio.run(scratch.create_database(database)),
        **redis_env,
        "MEDIO_JWT_SECRET": "test-secret-" + "x" * 40,
        "MEDIO_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "MEDIO_ACCESS_LOG": "false",
        "MEDIO_RATE_LIMIT_ENABLED": "false",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        upgrade(load_settings(env_file=None))
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        scratch.release_redis_index(index)
        stack.close()
        asyncio.run(scratch.drop_database(database))


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return load_settings(env_file=None)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    """Adapters bound to the running test's event loop."""
    built = build_container(settings)
    yield built
    await built.close()


@pytest.fixture
def drain(container: Container) -> Callable[[], Awaitable[int]]:
    """``await drain()`` projects every event appended so far (all shards, all projections)."""

    async def run() -> int:
        return await project_pending(container)

    return run


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """A fresh app; its lifespan builds and closes its own container."""
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
def make_token(settings: Settings) -> Callable[..., str]:
    """A signed token for ``sub`` (a fresh random user when omitted)."""

    def make(sub: str | None = None, role: Role = "parent", ttl: int = 3600) -> str:
        return create_token(settings, sub or f"user_{secrets.token_hex(6)}", role, ttl)

    return make


@pytest.fixture
def auth(make_token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """``Authorization`` headers for ``sub``."""

    def headers(sub: str | None = None, role: Role = "parent") -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(sub, role)}"}

    return headers
