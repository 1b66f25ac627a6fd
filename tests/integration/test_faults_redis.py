"""Redis goes away and comes back: the same API process recovers; AOF ``always`` loses nothing.

Each test runs its own ``redis-server`` on a free port (and its own database, so events of that
Redis never mix with the shared test archive), kills it with SIGKILL (a crash, not a polite
shutdown) and starts it again on the same port.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from private_stores import PrivateRedis, migrated_database

from adapters.eventlog import stream_name
from adapters.settings import Settings
from api.app import create_app
from projections.runtime import project_pending
from services.container import build_container

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
MAX_OUTAGE_ANSWER_SECONDS = 5.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    started: list[PrivateRedis] = []

    def make(appendfsync: str | None = None) -> PrivateRedis:
        server = PrivateRedis(tmp_path / f"redis-{len(started)}", appendfsync)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[str]:
    """A migrated database of this test's own (the archive must not mix two event logs)."""
    async with migrated_database(settings, "test_faults") as url:
        yield url


async def _timed(request: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_the_api_recovers_from_a_redis_crash_without_a_restart(
    settings: Settings, auth: Auth, private_redis: Callable[..., PrivateRedis], own_database: str
) -> None:
    server = private_redis()
    own = msgspec.structs.replace(settings, redis_url=server.url, database_url=own_database)
    clerk_id = f"user_{secrets.token_hex(5)}"
    headers = auth(clerk_id)
    body = {"clerkId": clerk_id, "tmdbId": "550", "currentTime": 5}
    async with AsyncTestClient(app=create_app(own)) as client:
        assert (await client.post("/api/progress", json=body, headers=headers)).status_code == 204
        profile = await client.post("/api/profiles", json={"name": "Bo", "age": 5}, headers=headers)
        video = await client.post(
            "/api/videos", json={"title": "V", "url": "https://example.com/v.mp4"}, headers=headers
        )
        ids = {"profile_id": profile.json()["id"], "video_id": video.json()["id"]}
        session = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()

        server.crash()
        saved, seconds = await _timed(client.post("/api/progress", json=body, headers=headers))
        assert saved.status_code == 503 and seconds < MAX_OUTAGE_ANSWER_SECONDS
        assert saved.json() == {"error": "Service unavailable, please retry"}
        assert saved.headers["retry-after"] == "1"
        beat = await client.post(
            f"/api/sessions/{session['session_id']}/heartbeat", json={}, headers=headers
        )
        assert beat.status_code == 503
        assert beat.json()["error"]["message"] == "Service unavailable, please retry"
        assert beat.json()["error"]["requestId"] == beat.headers["x-request-id"]
        assert (await client.get("/ready")).status_code == 503
        # What needs only Postgres keeps working.
        assert (await client.get("/api/profiles", headers=headers)).status_code == 200

        server.start()  # same port, empty: --appendonly no
        body["currentTime"] = 50
        assert (await client.post("/api/progress", json=body, headers=headers)).status_code == 204
        assert (await client.get("/ready")).status_code == 200
        container = build_container(own)
        try:
            assert await project_pending(container, timeout=10) == 1
        finally:
            await container.close()
        read = await client.get(f"/api/progress/{clerk_id}/550", headers=headers)
        assert read.status_code == 200 and read.json()["currentTime"] == 50


async def test_with_appendfsync_always_a_crash_loses_no_acknowledged_event(
    settings: Settings, auth: Auth, private_redis: Callable[..., PrivateRedis], own_database: str
) -> None:
    server = private_redis(appendfsync="always")
    own = msgspec.structs.replace(settings, redis_url=server.url, database_url=own_database)
    clerk_id = f"user_{secrets.token_hex(5)}"
    headers = auth(clerk_id)
    async with AsyncTestClient(app=create_app(own)) as client:
        codes = [
            (
                await client.post(
                    "/api/progress",
                    json={"clerkId": clerk_id, "tmdbId": str(i), "currentTime": i},
                    headers=headers,
                )
            ).status_code
            for i in range(50)
        ]
    assert codes == [204] * 50
    server.crash()
    server.start()  # same port and directory: the AOF is replayed
    client = redis.Redis.from_url(server.url)
    try:
        assert client.xlen(stream_name(0)) == 50
    finally:
        client.close()
