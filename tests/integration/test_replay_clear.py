"""A replay clears a Redis projection before rebuilding it: every key the projection wrote must
go, in however many chunks, and no other key may (here: the live keys of the same profiles and
users, and a counter the projection never registered)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from redis.asyncio import Redis
from session_samples import envelopes

from adapters.container import Container
from domain.events import AnyEvent, DayShare, ProgressSaved, SessionHeartbeat
from projections import base, daily_limit, user_index
from projections.base import RedisProjection
from projections.daily_limit import DailyLimitCounters, counter_key
from projections.redis_batch import apply_redis
from projections.resume import ResumeProjection, resume_key

PROFILES = 40
DAYS = 3  # within KEEP_DAYS: every date stays, so each profile has DAYS counters


async def _project(redis: Redis, projection: RedisProjection, events: Sequence[AnyEvent]) -> None:
    await apply_redis(redis, projection, envelopes(events))


async def _keys(redis: Redis, prefix: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]


def _beat(profile_id: int, local_date: str) -> SessionHeartbeat:
    return SessionHeartbeat(
        occurred_at=datetime(2026, 3, 3, tzinfo=UTC), actor="t", session_id=1,
        profile_id=profile_id, video_id=1, shares=(DayShare(local_date, 30.0),),
        watched_seconds=30.0,
    )  # fmt: skip


async def test_daily_limit_clear_removes_every_counter_in_chunks_and_nothing_else(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "UNLINK_CHUNK", 7)  # many chunks, one cut mid-profile
    redis = container.redis
    scratch = DailyLimitCounters(scratch=True)
    await scratch.clear(redis)
    first = 900_000_000 + secrets.randbelow(10**6) * 100
    days = [(date(2026, 3, 1) + timedelta(days=d)).isoformat() for d in range(DAYS)]
    beats = [_beat(first + p, day) for p in range(PROFILES) for day in days]
    await _project(redis, scratch, beats)
    written = await _keys(redis, scratch.key(daily_limit.PREFIX))
    assert len(written) == PROFILES * (DAYS + 1) + 1  # counters, date sets, the profile list
    neighbours = {
        counter_key(first, days[0], 0): b"5",  # the live counter of a rebuilt profile
        scratch.key(counter_key(first - 1, days[0], 0)): b"6",  # never registered: not its key
        scratch.key(f"{daily_limit.PREFIX}-other:{first}"): b"7",
    }
    await redis.mset(neighbours)
    try:
        await scratch.clear(redis)

        assert await _keys(redis, scratch.key(f"{daily_limit.PREFIX}:")) == [
            scratch.key(counter_key(first - 1, days[0], 0)).encode()
        ]
        assert await redis.mget(list(neighbours)) == list(neighbours.values())
        assert await scratch.dump(redis) == {}
    finally:
        await redis.delete(*neighbours)


async def test_resume_clear_removes_every_key_and_index_in_chunks_and_nothing_else(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_index, "CHUNK", 7)
    redis = container.redis
    scratch = ResumeProjection(scratch=True)
    await scratch.clear(redis)
    at = datetime.now(UTC) - timedelta(hours=1)
    clerks = [f"user_{secrets.token_hex(5)}" for _ in range(PROFILES // 4)]
    saves = [
        ProgressSaved(
            occurred_at=at, actor=clerk, clerk_id=clerk, tmdb_id=str(title), current_time=60
        )
        for clerk in clerks
        for title in range(3)
    ]
    await _project(redis, scratch, saves)
    written = await _keys(redis, scratch.key("resume"))
    # keys, indexes and list versions, the user list
    assert len(written) == len(clerks) * (3 + 1 + 1) + 1
    neighbours = {
        resume_key(clerks[0], "0"): b"live",  # the live key of a rebuilt title
        scratch.key(resume_key(clerks[0], "unindexed")): b"not its key",
    }
    await redis.mset(neighbours)
    try:
        await scratch.clear(redis)

        assert await _keys(redis, scratch.key("resume")) == [
            scratch.key(resume_key(clerks[0], "unindexed")).encode()
        ]
        assert await redis.mget(list(neighbours)) == list(neighbours.values())
        assert await scratch.dump(redis) == {}
    finally:
        await redis.delete(*neighbours)
