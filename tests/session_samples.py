"""Helpers for the watch-session tests: owners, profiles and videos in the catalog, events."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from api.auth import UserDirectory
from domain.catalog import Profile, Video
from domain.codec import decode
from domain.events import AnyEvent
from medio import catalog
from medio.bootstrap import Container
from medio.eventlog import stream_name

NOW = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)


async def new_owner(container: Container) -> int:
    """A fresh parent user row."""
    return await UserDirectory(container.engine).user_id(f"user_{secrets.token_hex(6)}")


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


async def session_events(redis: Redis, session_id: int, shards: int = 1) -> list[AnyEvent]:
    """Every event of one session in the log, in order."""
    found: list[AnyEvent] = []
    for shard in range(shards):
        for _id, fields in await redis.xrange(stream_name(shard)):
            event = decode(fields[b"t"].decode(), int(fields[b"v"]), fields[b"d"])
            if getattr(event, "session_id", None) == session_id:
                found.append(event)
    return found
