"""Redis comes back without its last writes, which the archive already holds (H2).

What ``appendfsync everysec`` allows on a host crash, made exact: a private ``redis-server``
(AOF, fsync always) serves a first phase of load, which is projected; the size of its AOF is
noted. A second phase is served and projected (archived), a third only served. Redis is killed,
its AOF cut back to the noted size, and started again: Redis is behind the archive by the
second phase and has lost the third entirely. The same API process then serves more load.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from private_stores import PrivateRedis, migrated_database, running_redis

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import stats_totals, watch_sessions
from api.app import create_app
from domain.clock import FakeClock
from domain.codec import decode
from domain.events import SessionEnded, SessionHeartbeat, SessionStarted
from domain.sessions import share_ms
from projections.archive_pages import read_page
from projections.replay import verify
from projections.runtime import project_pending
from projections.streams import DEAD_LETTER_STREAM
from services.container import build_container

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

Client = AsyncTestClient[Litestar]
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BEAT_SECONDS = 30
FAMILIES = 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with running_redis(tmp_path / "redis", appendfsync="always") as private:
        yield private


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[str]:
    async with migrated_database(settings, "test_lost_writes") as url:
        yield url


class Load:
    """Families watching: every session id answered, and each family's headers and ids."""

    def __init__(self, client: Client, clock: FakeClock, families: list[dict[str, Any]]) -> None:
        self.client = client
        self.clock = clock
        self.families = families
        self.answered: list[int] = []

    async def start(self, family: dict[str, Any]) -> int:
        body = {"profile_id": family["profile_id"], "video_id": family["video_id"]}
        answer = await self.client.post("/api/sessions/start", json=body, headers=family["auth"])
        assert answer.status_code == 201, answer.text
        session_id = int(answer.json()["session_id"])
        self.answered.append(session_id)
        family["sessions"].append(session_id)
        return session_id

    async def beat_all(self) -> None:
        self.clock.advance(BEAT_SECONDS)
        for family in self.families:
            for session_id in family["sessions"]:
                beat = await self.client.post(
                    f"/api/sessions/{session_id}/heartbeat", json={}, headers=family["auth"]
                )
                assert beat.status_code == 200, (session_id, beat.text)

    async def save(self, family: dict[str, Any], title: str, position: int) -> None:
        body = {"clerkId": family["clerk_id"], "tmdbId": title, "currentTime": position}
        saved = await self.client.post("/api/progress", json=body, headers=family["auth"])
        assert saved.status_code == 204


async def _families(client: Client, auth: Any) -> list[dict[str, Any]]:
    families = []
    for _ in range(FAMILIES):
        clerk_id = f"user_{secrets.token_hex(5)}"
        headers = auth(clerk_id)
        profile = await client.post(
            "/api/profiles",
            json={"name": "Kid", "age": 7, "daily_limit_minutes": 1440},
            headers=headers,
        )
        video = await client.post(
            "/api/videos", json={"title": "V", "url": "https://example.com/v.mp4"}, headers=headers
        )
        families.append(
            {
                "clerk_id": clerk_id,
                "auth": headers,
                "profile_id": profile.json()["id"],
                "video_id": video.json()["id"],
                "sessions": [],
            }
        )
    return families


def _aof(server: PrivateRedis) -> Path:
    (found,) = server.data_dir.glob("appendonlydir/*.incr.aof")
    return found


async def _archived_sessions(container: Container) -> dict[int, list[Any]]:
    """Every archived session event, by session id, in archive order."""
    async with container.engine.connect() as conn:
        page = await read_page(conn, container.keyring, 0, 10_000_000)
    found: dict[int, list[Any]] = {}
    for archived in page:
        if archived.type.startswith("session.") and archived.data is not None:
            event = decode(archived.type, archived.version, archived.data)
            assert isinstance(event, SessionStarted | SessionHeartbeat | SessionEnded)
            found.setdefault(event.session_id, []).append(event)
    return found


@pytest.mark.parametrize(
    ("shards", "lose_all"), [(1, False), (2, False), (1, True)], ids=["1", "2", "everything"]
)
async def test_redis_behind_the_archive_hands_out_no_id_twice_and_accrues_nothing_twice(
    settings: Settings,
    auth: Any,
    server: PrivateRedis,
    own_database: str,
    shards: int,
    lose_all: bool,
) -> None:
    """``lose_all``: Redis comes back empty (its AOF cut to nothing), the archive holds all."""
    own = msgspec.structs.replace(
        settings, redis_url=server.url, database_url=own_database, stream_shards=shards
    )
    clock = FakeClock(NOW)
    served = build_container(own, clock=clock)  # used on the test client's own loop only
    container = build_container(own)
    try:
        async with AsyncTestClient(app=create_app(own, container=served)) as client:
            load = Load(client, clock, await _families(client, auth))
            for family in load.families:  # phase 1: projected, and kept by Redis
                await load.start(family)
                await load.save(family, "1", 10)
            await load.beat_all()
            await project_pending(container)
            kept_bytes = _aof(server).stat().st_size

            for family in load.families:  # phase 2: projected (archived), then lost by Redis
                await load.start(family)
                await load.save(family, "2", 20)
            await load.beat_all()
            await load.beat_all()
            await project_pending(container)

            lost_entirely = []  # phase 3: acknowledged, never archived, lost by Redis
            for family in load.families:
                lost_entirely.append(await load.start(family))
                family["sessions"].remove(lost_entirely[-1])

            server.crash()
            with _aof(server).open("r+b") as aof:
                aof.truncate(0 if lose_all else kept_bytes)
            server.start()
            # A save needs no state, so nothing holds it back: it comes first, and its entry
            # id lies past everything archived. Redis is behind all the same.
            await load.save(load.families[0], "3", 30)

            for family in load.families:  # phase 4: the same process goes on
                await load.start(family)
                await load.save(family, "4", 40)
            await load.beat_all()
            await load.beat_all()
            await project_pending(container)
            client.blocking_portal.call(served.close)

        assert len(load.answered) == len(set(load.answered)), "a session id was handed out twice"
        plain = redis.Redis.from_url(server.url)
        try:
            assert plain.xlen(DEAD_LETTER_STREAM) == 0
        finally:
            plain.close()

        archived = await _archived_sessions(container)
        assert set(archived) == set(load.answered) - set(lost_entirely)
        async with container.engine.connect() as conn:
            rows = {row.session_id: row for row in await conn.execute(sa.select(watch_sessions))}
        for session_id, history in archived.items():
            accrued = sum(
                share_ms(share)
                for event in history
                if isinstance(event, SessionHeartbeat | SessionEnded)
                for share in event.shares
            )
            started, last = history[0].occurred_at, history[-1].occurred_at
            # Beats every 30 s (under the 90 s gap): exactly the time from start to last beat.
            assert accrued == int((last - started).total_seconds() * 1000), session_id
            assert rows[session_id].watched_ms == accrued

        recount: dict[int, int] = {}
        for history in archived.values():
            for event in history:
                if isinstance(event, SessionHeartbeat | SessionEnded):
                    ms = sum(share_ms(share) for share in event.shares)
                    recount[event.profile_id] = recount.get(event.profile_id, 0) + ms
        async with container.engine.connect() as conn:
            totals = dict(
                (
                    await conn.execute(
                        sa.select(stats_totals.c.profile_id, stats_totals.c.watched_ms)
                    )
                ).all()
            )
        assert totals == recount

        report = await verify(container)
        assert report.differences == {} and report.refused == {}
    finally:
        await container.close()
