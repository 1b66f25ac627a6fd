"""Postgres goes away: ingest keeps answering, reads that need it are 503, projections catch up.

"Down" is this run's own test database refusing connections: every session to it is ended
with ``pg_terminate_backend`` and new ones are refused (``ALTER DATABASE ... ALLOW_CONNECTIONS
false``), then allowed again. The Postgres server itself (shared with everyone) is never touched.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container
from adapters.settings import Settings
from api.app import create_app
from domain.history import ArchiveFilter
from medio.embedded import free_port
from projections.archive_pages import read_page
from projections.runtime import project_pending
from tests import scratch

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]


class Outage:
    """Switches this run's database off (for new and existing sessions) and on again."""

    def __init__(self, database: str) -> None:
        self.database = database

    async def start(self) -> None:
        await scratch.admin(
            f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()",
        )

    async def end(self) -> None:
        await scratch.admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def outage(settings: Settings) -> AsyncIterator[Outage]:
    assert settings.database_url and "medio_test_" in settings.database_url
    switch = Outage(settings.database_url.rsplit("/", 1)[1])
    try:
        yield switch
    finally:
        await switch.end()


async def _archived(container: Container, clerk_id: str) -> list[float]:
    async with container.engine.connect() as conn:
        wanted = ArchiveFilter(types=("progress.saved",))
        page = await read_page(conn, container.keyring, 0, 1_000_000, wanted)
    return [
        float(msgspec.json.decode(e.data)["current_time"])
        for e in page
        if e.actor == clerk_id and e.data is not None
    ]


def _assert_503_envelope(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["status"] == 503 and error["message"] == "Service unavailable, please retry"
    assert error["requestId"] == response.headers["x-request-id"]
    assert "asyncpg" not in response.text and "sqlalchemy" not in response.text.lower()


async def test_ingest_answers_reads_are_503_and_projections_catch_up_after(
    client: Client,
    auth: Auth,
    container: Container,
    drain: Callable[[], Awaitable[int]],
    outage: Outage,
) -> None:
    clerk_id = f"user_{secrets.token_hex(5)}"
    headers = auth(clerk_id)

    async def save(seconds: int) -> int:
        body = {"clerkId": clerk_id, "tmdbId": "603", "currentTime": seconds}
        return (await client.post("/api/progress", json=body, headers=headers)).status_code

    # Seen before the outage: the user row, a profile, a video and a running session.
    assert await save(1) == 204
    profile = await client.post("/api/profiles", json={"name": "Ada", "age": 7}, headers=headers)
    video = await client.post(
        "/api/videos", json={"title": "M", "url": "https://example.com/m.mp4"}, headers=headers
    )
    ids = {"profile_id": profile.json()["id"], "video_id": video.json()["id"]}
    session = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()
    beat = f"/api/sessions/{session['session_id']}/heartbeat"
    await drain()

    await outage.start()
    assert [await save(seconds) for seconds in (10, 20, 30)] == [204, 204, 204]
    by_parent = await client.post(beat, json={"position": 30}, headers=headers)
    by_device = await client.post(
        beat, json={"position": 31}, headers={"Authorization": f"Bearer {session['session_token']}"}
    )
    assert (by_parent.status_code, by_device.status_code) == (200, 200)
    _assert_503_envelope(await client.get("/api/profiles", headers=headers))
    _assert_503_envelope(await client.get(f"/api/videos/{ids['video_id']}", headers=headers))
    _assert_503_envelope(await client.get("/api/videos", headers=auth()))  # a new user's first
    assert (await client.get("/ready")).status_code == 503
    with pytest.raises(TimeoutError):  # the archive cannot be written: entries stay pending
        await project_pending(container, timeout=2.0)

    await outage.end()
    assert await drain() >= 1
    assert await _archived(container, clerk_id) == [1.0, 10.0, 20.0, 30.0]
    read = await client.get(f"/api/progress/{clerk_id}/603", headers=headers)
    assert read.json()["currentTime"] == 30
    assert (await client.get("/api/profiles", headers=headers)).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_a_database_server_that_is_not_there_is_503_not_500(
    settings: Settings, auth: Auth
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/medio"
    app = create_app(msgspec.structs.replace(settings, database_url=nowhere))
    async with AsyncTestClient(app=app) as unreachable:
        for path in ("/api/profiles", "/api/videos/1", "/api/sessions/1"):
            _assert_503_envelope(await unreachable.get(path, headers=auth()))
        assert (await unreachable.get("/ready")).status_code == 503
