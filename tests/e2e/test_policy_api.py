"""Parental policy over HTTP (CONTRACT §13): refusals, heartbeats that end or warn, parent
actions, time requests and the day's ledger, on a fake clock against real Redis and SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import clocked_client, daily_limit_refusal, parent_setup

from adapters.settings import Settings
from api.policy import MSG_COOLDOWN
from domain.clock import FakeClock

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]
MONDAY_NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday, 12:00 UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_NOON)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    async with clocked_client(settings, clock) as (client, _settings):
        yield client


async def _setup(client: Client, parent: dict[str, str], **profile: Any) -> tuple[int, list[int]]:
    created, videos = await parent_setup(client, parent, timezone="UTC", **profile)
    return created["id"], videos


async def _start(client: Client, parent: dict[str, str], pid: int, vid: int) -> Any:
    return await client.post(
        "/api/sessions/start", json={"profile_id": pid, "video_id": vid}, headers=parent
    )


async def _beat(client: Client, parent: dict[str, str], sid: int) -> Any:
    return await client.post(f"/api/sessions/{sid}/heartbeat", headers=parent)


REFUSALS = {"bedtime": "Bedtime", "locked": "Watching is paused by a parent"}


def _policy_refusal(reason: str, allowed_at: str | None) -> tuple[int, dict[str, Any]]:
    """The 403 to a start that Timmy's policy refuses (CONTRACT §13): why, and until when."""
    body = {"message": REFUSALS[reason], "reason": reason, "profile_name": "Timmy"}
    return 403, {**body, "allowed_at": allowed_at}


async def test_policy_fields_are_validated_and_shown(client: Client, auth: Auth) -> None:
    parent = auth()
    bad = await client.post(
        "/api/profiles",
        json={
            "name": "Ann",
            "age": 7,
            "weekday_limits": {"monday": 2000},
            "bedtime": {"start": "25:00", "end": "07:00"},
            "warning_minutes": 99,
            "limit_action": "nap",
        },
        headers=parent,
    )
    assert bad.status_code == 400
    paths = [e["path"] for e in bad.json()["errors"]]
    assert paths == [
        "weekday_limits.monday",
        "bedtime.start",
        "warning_minutes",
        "limit_action",
    ]
    pid, _videos = await _setup(
        client, parent, weekday_limits={"sunday": 90}, bedtime={"start": "20:00", "end": "07:00"}
    )
    shown = (await client.get(f"/api/profiles/{pid}", headers=parent)).json()
    assert shown["weekday_limits"]["sunday"] == 90 and shown["weekday_limits"]["monday"] is None
    assert shown["bedtime"] == {"start": "20:00", "end": "07:00"}
    assert (shown["warning_minutes"], shown["limit_action"]) == (5, "stop")
    video = await client.post(
        "/api/videos", json={"title": "T", "url": "https://e.com/v", "min_age": 18}, headers=parent
    )
    assert video.json()["errors"][0]["path"] == "min_age"


async def test_weekday_zero_refuses_and_bonus_lets_the_child_watch(
    client: Client, auth: Auth
) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent, weekday_limits={"monday": 0})
    refused = await _start(client, parent, pid, videos[0])
    assert (refused.status_code, refused.json()) == daily_limit_refusal(0, 0, "Timmy")
    bonus = await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 15}, headers=parent)
    assert bonus.status_code == 201
    assert bonus.json() == {
        "profile_id": pid,
        "date": "2026-05-04",
        "bonus_minutes": 15,
        "limit_minutes": 0,
        "remaining_minutes": 15,
    }
    started = await _start(client, parent, pid, videos[0])
    assert started.status_code == 201 and started.json()["remaining_minutes"] == 15


async def test_bedtime_now_refuses_until_its_end_and_mid_session_ends_it(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent, bedtime={"start": "11:00", "end": "12:30"})
    refused = await _start(client, parent, pid, videos[0])
    assert (refused.status_code, refused.json()) == _policy_refusal(
        "bedtime", "2026-05-04T12:30:00.000Z"
    )
    clock.advance(30 * 60)  # 12:30: bedtime is over
    started = (await _start(client, parent, pid, videos[0])).json()
    sid = started["session_id"]
    clock.advance(30)
    beat = (await _beat(client, parent, sid)).json()
    assert beat["status"] == "active"
    # The parent sets a bedtime from 12:31 while the session runs; the next beat ends it.
    changed = await client.patch(
        f"/api/profiles/{pid}", json={"bedtime": {"start": "12:31", "end": "06:00"}}, headers=parent
    )
    assert changed.status_code == 200
    clock.advance(30)  # 12:31:00
    beat = (await _beat(client, parent, sid)).json()
    assert beat["status"] == "bedtime"
    assert (await _beat(client, parent, sid)).status_code == 409
    session = (await client.get(f"/api/sessions/{sid}", headers=parent)).json()
    assert session["end_reason"] == "bedtime"


async def test_one_minute_limit_warns_on_the_first_beat(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent, daily_limit_minutes=1)
    sid = (await _start(client, parent, pid, videos[0])).json()["session_id"]
    clock.advance(20)
    beat = (await _beat(client, parent, sid)).json()
    # 20 s watched of 60: the end is 40 s away, within the 5-minute warning.
    assert beat["status"] == "active"
    assert beat["ends_at"] == "2026-05-04T12:01:00.000Z"
    assert beat["warning"] == "daily_limit"
    clock.advance(40)
    assert (await _beat(client, parent, sid)).json()["status"] == "limit_reached"


async def test_lock_stops_a_running_session_and_refuses_until_unlocked(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent)
    sid = (await _start(client, parent, pid, videos[0])).json()["session_id"]
    locked = await client.post(f"/api/profiles/{pid}/lock", json={"until": None}, headers=parent)
    assert locked.json() == {"profile_id": pid, "locked": True, "until": None}
    clock.advance(30)
    assert (await _beat(client, parent, sid)).json()["status"] == "stopped"
    refused = await _start(client, parent, pid, videos[1])
    assert (refused.status_code, refused.json()) == _policy_refusal("locked", None)
    assert (await client.delete(f"/api/profiles/{pid}/lock", headers=parent)).status_code == 204
    assert (await _start(client, parent, pid, videos[1])).status_code == 201


async def test_parent_stops_one_session(client: Client, auth: Auth, clock: FakeClock) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent)
    sid = (await _start(client, parent, pid, videos[0])).json()["session_id"]
    stranger = auth(sub="someone-else")
    assert (await client.post(f"/api/sessions/{sid}/stop", headers=stranger)).status_code == 404
    stop = await client.post(f"/api/sessions/{sid}/stop", headers=parent)
    assert stop.json() == {"session_id": sid, "status": "stopping"}
    clock.advance(10)
    assert (await _beat(client, parent, sid)).json()["status"] == "stopped"
    assert (await _beat(client, parent, sid)).status_code == 409


async def test_requests_approved_and_denied_then_the_ledger_explains_the_day(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain
) -> None:
    parent = auth()
    pid, videos = await _setup(client, parent, daily_limit_minutes=1)
    started = (await _start(client, parent, pid, videos[0])).json()
    sid, token = started["session_id"], started["session_token"]
    child = {"X-Session-Token": token}
    clock.advance(60)
    assert (await _beat(client, child, sid)).json()["status"] == "limit_reached"
    asked = await client.post(
        "/api/time-requests", json={"minutes": 10, "message": "please"}, headers=child
    )
    assert asked.status_code == 201, asked.text
    rid = asked.json()["request_id"]
    assert asked.json()["status"] == "pending"
    again = await client.post("/api/time-requests", json={"minutes": 10}, headers=child)
    assert again.status_code == 409
    stranger = auth(sub="someone-else")
    denied_for_stranger = await client.post(f"/api/time-requests/{rid}/approve", headers=stranger)
    assert denied_for_stranger.status_code == 404
    approved = await client.post(
        f"/api/time-requests/{rid}/approve", json={"minutes": 5}, headers=parent
    )
    assert approved.json()["status"] == "approved" and approved.json()["granted_minutes"] == 5
    assert (await client.post(f"/api/time-requests/{rid}/deny", headers=parent)).status_code == 409
    polled = await client.get(f"/api/time-requests/{rid}", headers=child)
    assert polled.json()["status"] == "approved"
    restarted = await _start(client, parent, pid, videos[1])
    assert restarted.status_code == 201 and restarted.json()["remaining_minutes"] == 5

    # A second request, denied: the cooldown follows.
    clock.advance(60)
    second = await client.post("/api/time-requests", json={"minutes": 30}, headers=child)
    rid2 = second.json()["request_id"]
    assert (await client.post(f"/api/time-requests/{rid2}/deny", headers=parent)).status_code == 200
    cooled = await client.post("/api/time-requests", json={"minutes": 30}, headers=child)
    assert cooled.status_code == 429
    assert cooled.headers["retry-after"] == "600"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
        cooled.headers
    )
    assert cooled.json() == {"message": MSG_COOLDOWN, "retryAfter": 600}
    listed = await client.get(f"/api/profiles/{pid}/time-requests?status=denied", headers=parent)
    assert [r["request_id"] for r in listed.json()["time_requests"]] == [rid2]

    await drain()
    ledger = (await client.get(f"/api/profiles/{pid}/days/today", headers=parent)).json()
    assert (ledger["date"], ledger["limit_minutes"], ledger["bonus_minutes"]) == (
        "2026-05-04",
        1,
        5,
    )
    assert ledger["watched_minutes"] == 1
    assert [s["end_reason"] for s in ledger["sessions"]] == ["daily_limit", None]
    assert [e["type"] for e in ledger["events"]] == [
        "policy_changed",
        "cut_off",
        "time_requested",
        "time_request_approved",
        "bonus",
        "time_requested",
        "time_request_denied",
    ]
    stats = (await client.get(f"/api/profiles/{pid}/stats", headers=parent)).json()
    assert (stats["daily_limit_minutes"], stats["today_bonus_minutes"]) == (1, 5)
    assert stats["daily_limit_remaining_minutes"] == 5
    bad = await client.get(f"/api/profiles/{pid}/days/yesterday", headers=parent)
    assert bad.status_code == 400


async def test_every_policy_change_is_in_the_ledger_with_what_it_set(
    client: Client, auth: Auth, drain: Drain
) -> None:
    """A change of the warning or of the time zone alone is an entry that says so, not a copy
    of the one before."""
    parent = auth()
    pid, _ = await _setup(client, parent)
    await client.patch(f"/api/profiles/{pid}", json={"warning_minutes": 10}, headers=parent)
    moved = {"timezone": "Europe/London", "limit_action": "finish_video"}
    await client.patch(f"/api/profiles/{pid}", json=moved, headers=parent)
    await drain()
    ledger = (await client.get(f"/api/profiles/{pid}/days/today", headers=parent)).json()
    changes = [e for e in ledger["events"] if e["type"] == "policy_changed"]
    assert [(e["warning_minutes"], e["timezone"], e["limit_action"]) for e in changes] == [
        (5, "UTC", "stop"),
        (10, "UTC", "stop"),
        (10, "Europe/London", "finish_video"),
    ]


BONUS = "Minutes must be an integer between 1 and 240"
UNTIL = "until must be null or an ISO-8601 time with its offset"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("bonus", {}, BONUS),
        ("bonus", {"minutes": 0}, BONUS),
        ("bonus", {"minutes": 241}, BONUS),
        ("bonus", {"minutes": "5"}, BONUS),
        ("bonus", {"minutes": True}, BONUS),
        ("bonus", {"minutes": 5.5}, BONUS),
        ("lock", {"until": "2026-05-04T13:00:00"}, UNTIL),
        ("lock", {"until": "tomorrow"}, UNTIL),
        ("lock", {"until": 5}, UNTIL),
        ("approve", {"minutes": 0}, BONUS),
        ("approve", {"minutes": "5"}, BONUS),
    ],
)
async def test_a_bad_policy_body_names_its_field_with_the_documented_message(
    client: Client, auth: Auth, path: str, body: dict[str, Any], message: str
) -> None:
    parent = auth()
    pid, _videos = await _setup(client, parent)
    url = {
        "bonus": f"/api/profiles/{pid}/bonus",
        "lock": f"/api/profiles/{pid}/lock",
        "approve": "/api/time-requests/999999/approve",  # checked before it is looked up
    }[path]
    response = await client.post(url, json=body, headers=parent)
    field = "until" if path == "lock" else "minutes"
    expected = [{"type": "field", "msg": message, "path": field, "location": "body"}]
    assert (response.status_code, response.json()) == (400, {"errors": expected})
    anonymous = await client.post(url, json=body)  # no token: 401 before the body is read
    assert anonymous.status_code == 401


async def test_good_policy_bodies_as_json_schema_allows_them(client: Client, auth: Auth) -> None:
    parent = auth()
    pid, _videos = await _setup(client, parent)
    bonus = await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 5.0}, headers=parent)
    assert (bonus.status_code, bonus.json()["bonus_minutes"]) == (201, 5)
    until = "2026-05-04T13:00:00+02:00"
    locked = await client.post(f"/api/profiles/{pid}/lock", json={"until": until}, headers=parent)
    assert locked.json() == {"profile_id": pid, "locked": True, "until": "2026-05-04T11:00:00.000Z"}
    missing = await client.post("/api/time-requests/999999/approve", headers=parent)
    assert missing.status_code == 404  # no body: the minutes asked for
