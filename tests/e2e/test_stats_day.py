"""A scripted day of a Tokyo child on two devices, and the parent's stats worked out by hand.

Devices: the TV uses the parent's bearer token; the tablet is in kids mode (public start, then
its session token). Max gap 90 s (default), timeout 15 minutes (so a ten-minute pause is only a
pause). Local times are Asia/Tokyo (UTC+9, no DST); the daily limit is 60 minutes.

====  ======  =====  ======================================  ==========================
id    device  video  what happens (local time)               watched
====  ======  =====  ======================================  ==========================
S0    tablet  Bravo  Tue 23:49:30 start, beats every minute   Tue 10.5 min, Wed 10 min
                     to 00:09:30, end 00:10:00
S5    TV      Delta  Wed 07:00 start and end at once          0
S1    TV      Alpha  08:00 start, 20 beats, end 08:20:30      20.5 min
S2    tablet  Bravo  09:00 start, beats to 09:05, paused ten  5 + 1.5 (cap) + 2 + 1
                     minutes, beats 09:15-09:17, end 09:18    = 9.5 min
S3    TV      Alpha  09:05 start, beats to 09:10, silent;     5 min, ended at 09:10
                     the reaper ends it at 09:25
S4    tablet  Charl  10:00 start (45 min used), beats every   15 min
                     minute; the 10:15 beat reaches 60 min
====  ======  =====  ======================================  ==========================

Wednesday: 10 + 20.5 + 9.5 + 5 + 15 = 60 min; Tuesday 10.5 min; all time 70.5 min over five
sessions that watched (S5 did not): average 14.1 -> 14. Favourites: Bravo (2 sessions, 30 min),
Alpha (2, 25.5 -> 25), Charlie (1, 15), Delta (1, 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import clocked_client, csrf_headers, daily_limit_refusal, parent_setup

from adapters.container import Container
from adapters.settings import Settings
from domain.clock import FakeClock
from projections.replay import verify
from services.container import build_container
from workers.reaper import reap_silent_sessions

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]
TOKYO = ZoneInfo("Asia/Tokyo")


def local(clock_time: str, day: str = "2026-03-04") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock_time}").replace(tzinfo=TOKYO).astimezone(UTC)


class Day:
    """Drives the script: moves the fake clock and speaks HTTP as the TV or the tablet."""

    def __init__(self, client: Client, clock: FakeClock, parent: dict[str, str]) -> None:
        self.client, self.clock, self.parent = client, clock, parent
        self.ids: dict[str, int] = {}
        self.tokens: dict[str, dict[str, str]] = {}

    def at(self, clock_time: str, day: str = "2026-03-04") -> None:
        self.clock.set(local(clock_time, day))

    async def start(self, name: str, device: str, profile_id: int, video_id: int) -> Any:
        body = {"profile_id": profile_id, "video_id": video_id}
        if device == "tv":
            response = await self.client.post("/api/sessions/start", json=body, headers=self.parent)
        else:
            response = await self.client.post(
                "/api/sessions/start/public", json=body, headers=await csrf_headers(self.client)
            )
        if response.status_code == 201:
            self.ids[name] = response.json()["session_id"]
            token = response.json()["session_token"]
            self.tokens[name] = (
                self.parent if device == "tv" else {"Authorization": f"Bearer {token}"}
            )
        return response

    async def beat(self, name: str) -> Any:
        response = await self.client.post(
            f"/api/sessions/{self.ids[name]}/heartbeat", headers=self.tokens[name]
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def beats(self, name: str, first: str, count: int, day: str = "2026-03-04") -> None:
        """``count`` beats a minute apart, the first at ``first`` (HH:MM:SS)."""
        self.at(first, day)
        for beat in range(count):
            if beat:
                self.clock.advance(60)
            assert (await self.beat(name))["status"] == "active"

    async def end(self, name: str) -> Any:
        response = await self.client.post(
            f"/api/sessions/{self.ids[name]}/end", headers=self.tokens[name]
        )
        assert response.status_code == 200, response.text
        return response.json()


TIMEOUT = 900


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local("20:00:00", "2026-03-03"))


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with clocked_client(settings, clock, session_timeout_seconds=TIMEOUT) as (client, _s):
        yield client


@pytest.fixture
async def reaper(settings: Settings, clock: FakeClock) -> AsyncIterator[Container]:
    """What the reaper job builds, on the same fake clock, in the test's event loop."""
    tuned = msgspec.structs.replace(settings, session_timeout_seconds=TIMEOUT)
    built = build_container(tuned, clock=clock)
    yield built
    await built.close()


async def test_a_scripted_day_gives_the_stats_worked_out_by_hand(
    client: Client,
    clock: FakeClock,
    reaper: Container,
    container: Container,
    auth: Auth,
    drain: Drain,
) -> None:
    parent = auth()
    profile, (alpha, bravo, charlie, delta) = await parent_setup(
        client, parent, name="Mina", daily_limit_minutes=60, kids_mode=True
    )
    pid = profile["id"]
    day = Day(client, clock, parent)

    # S0: the tablet across Tokyo midnight (Tue -> Wed)
    day.at("23:49:30", "2026-03-03")
    assert (await day.start("S0", "tablet", pid, bravo)).status_code == 201
    await day.beats("S0", "23:50:30", 10, "2026-03-03")  # up to 23:59:30
    await day.beats("S0", "00:00:30", 10)  # the first of these is split 30 s / 30 s
    day.at("00:10:00")
    assert (await day.end("S0"))["duration_minutes"] == 20.5

    # S5: a session that watched nothing
    day.at("07:00:00")
    await day.start("S5", "tv", pid, delta)
    assert (await day.end("S5"))["duration_minutes"] == 0.0

    # S1: the TV, 20 minutes and a half
    day.at("08:00:00")
    await day.start("S1", "tv", pid, alpha)
    await day.beats("S1", "08:01:00", 20)
    day.at("08:20:30")
    assert (await day.end("S1"))["ended_at"] == "2026-03-03T23:20:30.000Z"

    # S2 (tablet) pauses ten minutes while S3 (TV) plays and then goes silent
    day.at("09:00:00")
    await day.start("S2", "tablet", pid, bravo)
    await day.beats("S2", "09:01:00", 5)  # to 09:05
    await day.start("S3", "tv", pid, alpha)
    await day.beats("S3", "09:06:00", 5)  # to 09:10, then nothing
    await day.beats("S2", "09:15:00", 3)  # 90 s for the pause, then 2 minutes
    day.at("09:18:00")
    await day.end("S2")
    day.at("09:20:00")
    assert day.ids["S3"] not in await reap_silent_sessions(reaper)  # silent 10 min < 15
    day.at("09:25:00")
    assert day.ids["S3"] in await reap_silent_sessions(reaper)
    s3 = (await client.get(f"/api/sessions/{day.ids['S3']}", headers=parent)).json()
    assert (s3["end_reason"], s3["ended_at"]) == ("timeout", "2026-03-04T00:10:00.000Z")
    assert s3["watched_seconds"] == 300.0

    # S4: the tablet again; the limit ends it mid-video (projections keep up between beats)
    await drain()
    day.at("10:00:00")
    started = await day.start("S4", "tablet", pid, charlie)
    assert started.json()["remaining_minutes"] == 15
    for minute in range(1, 16):
        day.at(f"10:{minute:02d}:00")
        beat = await day.beat("S4")
        await drain()
        assert beat["status"] == ("limit_reached" if minute == 15 else "active")
    assert beat["remaining_minutes"] == 0

    # Both devices are refused for the rest of the day, with the seed's body (the anonymous
    # kids-mode tablet without the child's name)
    day.at("10:30:00")
    for device, name in (("tv", "Mina"), ("tablet", None)):
        response = await day.start("late", device, pid, alpha)
        assert (response.status_code, response.json()) == daily_limit_refusal(60, 60, name)

    stats = await client.get(f"/api/profiles/{pid}/stats", headers=parent)
    assert stats.status_code == 200
    assert stats.json() == {
        "profile_id": pid,
        "total_watch_time_minutes": 70,
        "videos_watched": 4,
        "average_session_minutes": 14,
        "today_watch_time_minutes": 60,
        "daily_limit_minutes": 60,
        "daily_limit_remaining_minutes": 0,
        "today_bonus_minutes": 0,
        "weekly_stats": {
            "monday": 0,
            "tuesday": 10,
            "wednesday": 60,
            "thursday": 0,
            "friday": 0,
            "saturday": 0,
            "sunday": 0,
        },
        "favorite_videos": [
            {"video_id": bravo, "title": "Bravo", "watch_count": 2, "total_minutes": 30},
            {"video_id": alpha, "title": "Alpha", "watch_count": 2, "total_minutes": 25},
            {"video_id": charlie, "title": "Charlie", "watch_count": 1, "total_minutes": 15},
            {"video_id": delta, "title": "Delta", "watch_count": 1, "total_minutes": 0},
        ],
    }

    # A new local day: today is Thursday, a fresh limit, the week still holds Tue and Wed
    day.at("00:30:00", "2026-03-05")
    thursday = (await client.get(f"/api/profiles/{pid}/stats", headers=parent)).json()
    assert thursday["today_watch_time_minutes"] == 0
    assert thursday["daily_limit_remaining_minutes"] == 60
    assert (thursday["weekly_stats"]["tuesday"], thursday["weekly_stats"]["wednesday"]) == (10, 60)
    assert (await day.start("S6", "tablet", pid, alpha)).status_code == 201

    # ... and a rebuild from the archive finds the same sessions, stats and counters
    await drain()
    report = await verify(container, ["sessions", "stats", "daily_limit"])
    assert report.differences == {}


async def test_stats_of_someone_elses_profile_are_404(client: Client, auth: Auth) -> None:
    profile, _videos = await parent_setup(client, auth())
    response = await client.get(f"/api/profiles/{profile['id']}/stats", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Profile not found"
    assert (await client.get(f"/api/profiles/{profile['id']}/stats")).status_code == 401


async def test_stats_of_a_profile_that_never_watched_are_zero(client: Client, auth: Auth) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent, daily_limit_minutes=45)
    body = (await client.get(f"/api/profiles/{profile['id']}/stats", headers=parent)).json()
    assert body["total_watch_time_minutes"] == body["average_session_minutes"] == 0
    assert (body["daily_limit_minutes"], body["daily_limit_remaining_minutes"]) == (45, 45)
    assert body["favorite_videos"] == [] and set(body["weekly_stats"].values()) == {0}
