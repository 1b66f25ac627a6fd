"""Two scripted days of a child's policy, every figure worked out by hand in the comments.

* ``Europe/London`` across the spring-forward night: on Sunday 2027-03-28 the clocks jump from
  01:00 GMT to 02:00 BST, so the local day runs from 00:00Z to 23:00Z and lasts 23 hours.
* ``America/Los_Angeles`` (PST, UTC-8, in January) with a bedtime from 20:30 to 07:00, which
  wraps midnight: Friday's local day runs from 08:00Z Friday to 08:00Z Saturday.

The player beats once a minute (under the 90 s gap, so each beat accrues a whole minute). The
API runs on a fake clock against real Redis and SQL; ``drain`` projects before reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from session_samples import Auth, Client, Drain, clocked_client, parent_setup

from adapters.settings import Settings
from domain.clock import FakeClock


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc("2027-01-01T00:00"))


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with clocked_client(settings, clock) as (client, _settings):
        yield client


class Child:
    """One profile's parent and player on the scripted clock."""

    def __init__(self, client: Client, parent: dict[str, str], clock: FakeClock) -> None:
        self.client, self.parent, self.clock = client, parent, clock
        self.pid = 0
        self.videos: list[int] = []

    async def setup(self, at: str, **profile: Any) -> None:
        """The parent creates the profile (and videos) at ``at``."""
        self.clock.set(utc(at))
        created, self.videos = await parent_setup(self.client, self.parent, **profile)
        self.pid = created["id"]

    async def start(self, at: str, video: int = 0) -> Any:
        self.clock.set(utc(at))
        body = {"profile_id": self.pid, "video_id": self.videos[video]}
        return await self.client.post("/api/sessions/start", json=body, headers=self.parent)

    async def begin(self, at: str, remaining: int, video: int = 0) -> int:
        """A session started at ``at`` with ``remaining`` minutes of the day left; its id."""
        started = await self.start(at, video)
        assert started.status_code == 201, started.text
        assert started.json()["remaining_minutes"] == remaining
        session_id: int = started.json()["session_id"]
        return session_id

    async def refused(self, at: str) -> dict[str, Any]:
        """A start at ``at`` that the policy refuses (403); the refusal's body."""
        refusal = await self.start(at)
        assert refusal.status_code == 403, refusal.text
        body: dict[str, Any] = refusal.json()
        return body

    async def watch(self, sid: int, minutes: int) -> list[dict[str, Any]]:
        """A beat a minute for ``minutes`` minutes, or until the session is ended."""
        beats: list[dict[str, Any]] = []
        for _ in range(minutes):
            self.clock.advance(60)
            beat = await self.client.post(f"/api/sessions/{sid}/heartbeat", headers=self.parent)
            assert beat.status_code == 200, beat.text
            beats.append(beat.json())
            if beats[-1]["status"] != "active":
                break
        return beats

    async def bonus(self, at: str, minutes: int) -> dict[str, Any]:
        self.clock.set(utc(at))
        body = {"minutes": minutes}
        granted = await self.client.post(
            f"/api/profiles/{self.pid}/bonus", json=body, headers=self.parent
        )
        assert granted.status_code == 201, granted.text
        result: dict[str, Any] = granted.json()
        return result

    async def get(self, path: str) -> dict[str, Any]:
        answer = await self.client.get(f"/api/profiles/{self.pid}{path}", headers=self.parent)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def child(client: Client, auth: Auth, clock: FakeClock) -> Child:
    return Child(client, auth(), clock)


def minute(beats: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The beat sent ``n`` minutes after the session started (the first is minute 1)."""
    return beats[n - 1]


async def test_london_across_the_spring_forward_night(
    child: Child, clock: FakeClock, drain: Drain
) -> None:
    # Limits: 60 min a day, Sunday 90. Bedtime only from Sunday 20:30 to Monday 07:00 (no
    # bedtime on Saturday night). GMT = UTC until Sunday 01:00Z, then BST = UTC+1.
    await child.setup(
        "2027-03-27T20:00",  # Saturday 20:00 GMT
        timezone="Europe/London",
        daily_limit_minutes=60,
        weekday_limits={"sunday": 90},
        bedtime={"sunday": {"start": "20:30", "end": "07:00"}},
    )

    # Saturday 23:30 GMT: session A, Saturday's 60 minutes all left.
    a = await child.begin("2027-03-27T23:30", remaining=60)
    beats = await child.watch(a, 130)
    # 23:50Z, minute 20: Saturday has 40 minutes left, which would last until 00:30Z, past
    # Saturday's end at 00:00Z; from there Sunday's 90 minutes last until 01:30Z = 02:30 BST.
    assert minute(beats, 20)["ends_at"] == "2027-03-28T01:30:00.000Z"
    assert minute(beats, 20)["warning"] is None
    # 01:25Z = 02:25 BST, minute 115: Sunday has 85 of 90 watched; 5 minutes left: the warning.
    assert minute(beats, 115)["ends_at"] == "2027-03-28T01:30:00.000Z"
    assert minute(beats, 115)["warning"] == "daily_limit"
    # 01:30Z = 02:30 BST, minute 120: the limit. Sunday's local clock reads 00:00 -> 02:30 (two
    # and a half hours on the wall), but 90 real minutes were watched on Sunday: 00:00Z-01:30Z.
    assert len(beats) == 120 and minute(beats, 120)["status"] == "limit_reached"
    assert minute(beats, 120)["last_heartbeat"] == "2027-03-28T01:30:00.000Z"

    refused = await child.refused("2027-03-28T01:31")
    assert (refused["limit_minutes"], refused["watched_minutes"]) == (90, 90)

    # 06:30 BST = 05:30Z: a bonus of 20 for Sunday: 90 + 20 - 90 = 20 left.
    assert await child.bonus("2027-03-28T05:30", 20) == {
        "profile_id": child.pid,
        "date": "2027-03-28",
        "bonus_minutes": 20,
        "limit_minutes": 90,
        "remaining_minutes": 20,
    }

    # 20:20 BST = 19:20Z: session B with those 20 minutes; bedtime is at 20:30 BST = 19:30Z.
    b = await child.begin("2027-03-28T19:20", remaining=20, video=1)
    beats = await child.watch(b, 30)
    # 19:25Z, minute 5: 95 watched of 110, the budget would last until 19:40Z, bedtime comes
    # first at 19:30Z, within the 5-minute warning.
    assert minute(beats, 5)["ends_at"] == "2027-03-28T19:30:00.000Z"
    assert minute(beats, 5)["warning"] == "bedtime"
    assert len(beats) == 10 and minute(beats, 10)["status"] == "bedtime"  # 19:30Z

    # 20:31 BST: bedtime until Monday 07:00 BST = 06:00Z.
    refused = await child.refused("2027-03-28T19:31")
    assert refused["allowed_at"] == "2027-03-29T06:00:00.000Z"

    # 23:55 BST = 22:55Z, still Sunday: 100 watched (90 + 10), limit 90, bonus 20 -> 10 left.
    await drain()
    clock.set(utc("2027-03-28T22:55"))
    stats = await child.get("/stats")
    assert stats["today_watch_time_minutes"] == 100
    assert (stats["daily_limit_minutes"], stats["today_bonus_minutes"]) == (90, 20)
    assert stats["daily_limit_remaining_minutes"] == 10
    assert (stats["weekly_stats"]["saturday"], stats["weekly_stats"]["sunday"]) == (30, 100)
    assert (await child.bonus("2027-03-28T22:55", 5))["date"] == "2027-03-28"
    # 23:05Z is 00:05 BST on Monday: Sunday had only 23 hours, so this bonus is Monday's.
    monday = await child.bonus("2027-03-28T23:05", 5)
    assert (monday["date"], monday["limit_minutes"], monday["remaining_minutes"]) == (
        "2027-03-29",
        60,
        65,
    )

    await drain()
    sunday = await child.get("/days/2027-03-28")
    # Sunday: limit 90, bonus 20 + 5 = 25, watched 90 (A) + 10 (B) = 100, 115 - 100 = 15 left.
    assert (sunday["limit_minutes"], sunday["bonus_minutes"]) == (90, 25)
    assert (sunday["watched_minutes"], sunday["remaining_minutes"]) == (100, 15)
    # The day's sessions are those started on it: B. A started on Saturday; its cut-off at
    # 02:30 BST is Sunday's.
    assert [(s["session_id"], s["end_reason"]) for s in sunday["sessions"]] == [(b, "bedtime")]
    assert sunday["sessions"][0]["watched_minutes"] == 10
    assert [(e["type"], e["at"]) for e in sunday["events"]] == [
        ("cut_off", "2027-03-28T01:30:00.000Z"),
        ("bonus", "2027-03-28T05:30:00.000Z"),
        ("cut_off", "2027-03-28T19:30:00.000Z"),
        ("bonus", "2027-03-28T22:55:00.000Z"),
    ]
    assert [e.get("reason") for e in sunday["events"] if e["type"] == "cut_off"] == [
        "daily_limit",
        "bedtime",
    ]
    saturday = await child.get("/days/2027-03-27")
    # Saturday: 23:30-00:00 GMT = 30 minutes of A's 120; A is listed there with its whole 120.
    assert (saturday["watched_minutes"], saturday["remaining_minutes"]) == (30, 30)
    assert [(s["session_id"], s["watched_minutes"]) for s in saturday["sessions"]] == [(a, 120)]
    assert [e["type"] for e in saturday["events"]] == ["policy_changed"]
    monday_ledger = await child.get("/days/2027-03-29")
    assert (monday_ledger["bonus_minutes"], monday_ledger["watched_minutes"]) == (5, 0)
    assert [e["at"] for e in monday_ledger["events"]] == ["2027-03-28T23:05:00.000Z"]


async def test_los_angeles_with_bedtime_across_midnight(
    child: Child, client: Client, clock: FakeClock, drain: Drain
) -> None:
    # PST = UTC-8. Limits: 60 min a day, Friday 45. Bedtime every day 20:30 -> 07:00.
    await child.setup(
        "2027-01-15T14:00",  # Friday 06:00 PST
        timezone="America/Los_Angeles",
        daily_limit_minutes=60,
        weekday_limits={"friday": 45},
        bedtime={"start": "20:30", "end": "07:00"},
    )

    # 06:59 PST: Thursday's window still runs, until 07:00 PST = 15:00Z.
    assert await child.refused("2027-01-15T14:59") == {
        "message": "Bedtime",
        "reason": "bedtime",
        "profile_name": "Timmy",
        "allowed_at": "2027-01-15T15:00:00.000Z",
    }
    # 07:00 PST: allowed, Friday's 45 minutes.
    a = await child.begin("2027-01-15T15:00", remaining=45)
    beats = await child.watch(a, 20)
    # 15:01Z, minute 1: 44 left -> 15:45Z; bedtime is 13.5 hours later: the limit comes first.
    assert (minute(beats, 1)["ends_at"], minute(beats, 1)["warning"]) == (
        "2027-01-15T15:45:00.000Z",
        None,
    )
    assert minute(beats, 20)["remaining_minutes"] == 25
    ended = await client.post(f"/api/sessions/{a}/end", headers=child.parent)
    assert ended.status_code == 200  # at 15:20Z: 20 watched

    # 20:10 PST Friday = 04:10Z Saturday: session B, 25 left.
    b = await child.begin("2027-01-16T04:10", remaining=25, video=1)
    beats = await child.watch(b, 30)
    # 04:25Z, minute 15: 35 watched of 45, the budget would last until 04:35Z; bedtime at
    # 20:30 PST = 04:30Z comes first and is within the warning.
    assert minute(beats, 15)["ends_at"] == "2027-01-16T04:30:00.000Z"
    assert minute(beats, 15)["warning"] == "bedtime"
    assert len(beats) == 20 and minute(beats, 20)["status"] == "bedtime"  # 04:30Z: 40 watched

    # 20:31 PST: bedtime until Saturday 07:00 PST = 15:00Z.
    refused = await child.refused("2027-01-16T04:31")
    assert refused["allowed_at"] == "2027-01-16T15:00:00.000Z"

    # 23:59 PST Friday = 07:59Z Saturday: still Friday. 40 watched of 45.
    await drain()
    clock.set(utc("2027-01-16T07:59"))
    stats = await child.get("/stats")
    assert (stats["today_watch_time_minutes"], stats["daily_limit_minutes"]) == (40, 45)
    assert stats["daily_limit_remaining_minutes"] == 5
    assert stats["weekly_stats"]["friday"] == 40 and stats["weekly_stats"]["saturday"] == 0
    friday_bonus = await child.bonus("2027-01-16T07:59", 10)
    assert (friday_bonus["date"], friday_bonus["remaining_minutes"]) == ("2027-01-15", 15)

    # 00:00 PST Saturday = 08:00Z: a new day (60 minutes, no bonus), the same bedtime window.
    refused = await child.refused("2027-01-16T08:00")
    assert refused["allowed_at"] == "2027-01-16T15:00:00.000Z"
    stats = await child.get("/stats")
    assert (stats["today_watch_time_minutes"], stats["today_bonus_minutes"]) == (0, 0)
    assert (stats["daily_limit_minutes"], stats["daily_limit_remaining_minutes"]) == (60, 60)
    assert stats["weekly_stats"]["friday"] == 40

    # 07:00 PST Saturday: allowed, with Saturday's 60 (Friday's bonus stays Friday's).
    c = await child.begin("2027-01-16T15:00", remaining=60, video=2)

    await drain()
    friday = await child.get("/days/2027-01-15")
    # Friday: limit 45 + bonus 10, watched 20 (A) + 20 (B) = 40, 55 - 40 = 15 left. Its
    # sessions and cut-off happened partly on Saturday in UTC, all on Friday in Los Angeles.
    assert (friday["limit_minutes"], friday["bonus_minutes"]) == (45, 10)
    assert (friday["watched_minutes"], friday["remaining_minutes"]) == (40, 15)
    assert [
        (s["session_id"], s["end_reason"], s["watched_minutes"]) for s in friday["sessions"]
    ] == [
        (a, "ended", 20),
        (b, "bedtime", 20),
    ]
    assert [(e["type"], e["at"]) for e in friday["events"]] == [
        ("policy_changed", "2027-01-15T14:00:00.000Z"),
        ("cut_off", "2027-01-16T04:30:00.000Z"),
        ("bonus", "2027-01-16T07:59:00.000Z"),
    ]
    saturday = await child.get("/days/2027-01-16")
    assert (saturday["limit_minutes"], saturday["bonus_minutes"]) == (60, 0)
    assert [s["session_id"] for s in saturday["sessions"]] == [c]
    assert saturday["events"] == []
