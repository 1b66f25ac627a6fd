"""Helpers for the watch-session tests: owners, profiles and videos in the catalog, events."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from api.app import create_app
from domain.catalog import Profile, Video
from domain.clock import FakeClock
from domain.codec import decode, encode
from domain.events import AnyEvent
from projections.base import Envelope
from services import catalog
from services.container import build_container
from services.users import UserDirectory

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]  # the ``auth`` fixture: a user's Authorization header
Drain = Callable[[], Awaitable[int]]  # the ``drain`` fixture: project what was appended

NOW = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
START = datetime(2026, 5, 6, 3, 0, tzinfo=UTC)  # where API tests' fake clock starts: 12:00 in Tokyo


def envelopes(events: Sequence[AnyEvent]) -> list[Envelope]:
    """``events`` as a projector reads them from shard 0, with ids ``1-0``, ``2-0``, ..."""
    out = []
    for i, event in enumerate(events, start=1):
        name, version, data = encode(event)
        out.append(Envelope(0, f"{i}-0", name, version, data, event))
    return out


async def new_owner(container: Container) -> int:
    """A fresh parent user row."""
    return await UserDirectory(container).user_id(f"user_{secrets.token_hex(6)}")


async def new_profile(container: Container, user_id: int, **values: Any) -> Profile:
    fields: dict[str, Any] = {
        "name": "Timmy",
        "age": 8,
        "avatar_url": None,
        "daily_limit_minutes": 60,
        "timezone": "Asia/Tokyo",
        "kids_mode": False,
    }
    fields.update(values)
    return await catalog.create_profile(container.engine, user_id, fields, NOW)


async def new_video(container: Container, user_id: int, title: str = "Video") -> Video:
    fields = {"title": title, "url": "https://example.com/v.mp4"}
    return await catalog.create_video(container.engine, user_id, fields, NOW)


async def session_events(
    redis: Redis, session_id: int, shards: int | None = None
) -> list[AnyEvent]:
    """Every event of one session in the log, in order (every shard of the run by default)."""
    found: list[AnyEvent] = []
    for shard in range(shards or int(os.environ.get("MEDIO_STREAM_SHARDS", "1"))):
        for _id, fields in await redis.xrange(stream_name(shard)):
            event = decode(fields[b"t"].decode(), int(fields[b"v"]), fields[b"d"])
            if getattr(event, "session_id", None) == session_id:
                found.append(event)
    return found


@asynccontextmanager
async def clocked_client(
    settings: Settings, clock: FakeClock, **overrides: Any
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Settings]]:
    """The API on a fake clock with ``overrides`` applied to its settings.

    The test client serves the app on its own event loop, so the container is closed there.
    """
    tuned = msgspec.structs.replace(settings, **overrides)
    container = build_container(tuned, clock=clock)
    async with AsyncTestClient(app=create_app(tuned, container=container)) as client:
        yield client, tuned
        client.blocking_portal.call(container.close)


async def csrf_headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    """What a browser or kids-mode device sends on an unsafe request without ``Authorization``."""
    token = (await client.get("/api/csrf-token")).json()["csrfToken"]
    return {"X-CSRF-Token": token}


async def forget_rate_counts(redis: Redis) -> None:
    """Rate-limit counts are per window (some per address): earlier requests of the same window
    must not leak into a check of them."""
    keys = [key async for key in redis.scan_iter("medio:rl:*")]
    if keys:
        await redis.delete(*keys)


async def parent_setup(
    client: AsyncTestClient[Litestar], headers: dict[str, str], **profile: Any
) -> tuple[dict[str, Any], list[int]]:
    """A profile (Tokyo, 60 min unless told otherwise) and four videos of the same parent."""
    body = {"name": "Timmy", "age": 8, "timezone": "Asia/Tokyo", **profile}
    created = await client.post("/api/profiles", json=body, headers=headers)
    assert created.status_code == 201, created.text
    videos = []
    for title in ("Alpha", "Bravo", "Charlie", "Delta"):
        video = await client.post(
            "/api/videos",
            json={"title": title, "url": f"https://example.com/{title}.mp4"},
            headers=headers,
        )
        assert video.status_code == 201, video.text
        videos.append(int(video.json()["id"]))
    return created.json(), videos


async def played_session(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    profile_id: int,
    video_id: int,
    position: float | None = None,
) -> dict[str, Any]:
    """A session started, beaten once at ``position`` (none when ``None``) and ended, each step
    checked; the start's answer."""
    body = {"profile_id": profile_id, "video_id": video_id}
    started = await client.post("/api/sessions/start", json=body, headers=headers)
    assert started.status_code == 201, started.text
    sid = started.json()["session_id"]
    if position is not None:
        beat = await client.post(
            f"/api/sessions/{sid}/heartbeat", json={"position": position}, headers=headers
        )
        assert beat.status_code == 200, beat.text
    ended = await client.post(f"/api/sessions/{sid}/end", headers=headers)
    assert ended.status_code == 200, ended.text
    answer: dict[str, Any] = started.json()
    return answer


def daily_limit_refusal(
    limit: int, watched: int, profile_name: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The seed's 403 to a start past the day's limit, as ``(status, body)``; the child's name
    only to a caller who knows it (a parent's token, not a kids-mode device)."""
    body: dict[str, Any] = {
        "message": "Daily watch limit exceeded",
        "limit_minutes": limit,
        "watched_minutes": watched,
    }
    if profile_name is not None:
        body["profile_name"] = profile_name
    return 403, {**body, "reason": "daily_limit"}
