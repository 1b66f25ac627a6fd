"""Parental policy (CONTRACT §13) end to end against one real ``medio dev``: its own data dir,
embedded Redis and SQLite, its API and projector workers as child processes, real HTTP.

The server runs on the real clock, so each check picks its times relative to now: every child
here lives in the ``Etc/GMT±N`` zone where it is now between 12:00 and 13:00 (a zone a whole
number of hours from UTC), so no local midnight falls during the module and a bedtime window
can be drawn around the present minute. Nothing needs a fake clock; the scripted days with
fixed instants are ``test_policy_scripted_days``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from test_medio_dev import _stop_tree, start_dev
from test_readme_tour import wait_until_serving

from adapters.settings import Settings
from api.auth import create_token
from domain.policy import WEEKDAYS
from medio.embedded import free_port

Call = Callable[..., httpx.Response]


def midday_zone(now: datetime) -> str:
    """An IANA zone in which ``now`` is between 12:00 and 13:00 (``Etc/GMT-2`` is UTC+2)."""
    offset = 12 - now.hour
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One ``medio dev`` for the module: its base URL and data dir."""
    data_dir, port = tmp_path_factory.mktemp("policy") / "var", free_port()
    process = start_dev(data_dir, port)
    try:
        wait_until_serving(port)
        yield f"http://127.0.0.1:{port}", data_dir
    finally:
        _stop_tree(process)


class Family:
    """A parent of the running ``medio dev`` with one child, its zone and two videos."""

    def __init__(self, dev: tuple[str, Path], name: str, **profile: Any) -> None:
        self.base, data_dir = dev
        token = create_token(Settings(data_dir=str(data_dir)), sub=name)  # as `medio token create`
        self.parent = {"Authorization": f"Bearer {token}"}
        self.zone = midday_zone(datetime.now(UTC))
        body = {"name": "Timmy", "age": 8, "timezone": self.zone, **profile}
        created = self.call("POST", "/api/profiles", json=body)
        assert created.status_code == 201, created.text
        self.pid = int(created.json()["id"])
        self.videos = [
            int(self.call("POST", "/api/videos", json=video).json()["id"])
            for video in (
                {"title": "Alpha", "url": "https://example.com/a.mp4"},
                {"title": "Bravo", "url": "https://example.com/b.mp4", "min_age": 12},
            )
        ]

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return httpx.request(
            method, self.base + path, headers=headers or self.parent, timeout=10, **kw
        )

    def start(self, video: int = 0) -> httpx.Response:
        body = {"profile_id": self.pid, "video_id": self.videos[video]}
        answer: httpx.Response = self.call("POST", "/api/sessions/start", json=body)
        return answer

    def beat(self, sid: int, headers: dict[str, str] | None = None) -> httpx.Response:
        answer: httpx.Response = self.call("POST", f"/api/sessions/{sid}/heartbeat", headers)
        return answer

    def local_now(self) -> datetime:
        return datetime.now(ZoneInfo(self.zone))

    def today(self) -> date:
        return self.local_now().date()

    def local_instant(self, hhmm: str) -> str:
        """Today's local ``hhmm`` as the API writes an instant."""
        local = datetime.combine(self.today(), datetime.strptime(hhmm, "%H:%M").time())
        moment = local.replace(tzinfo=ZoneInfo(self.zone)).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_weekday_entry_of_zero_refuses_and_a_bonus_lets_the_child_watch(
    dev: tuple[str, Path],
) -> None:
    child = Family(dev, "parent_weekday", weekday_limits={})
    today = WEEKDAYS[child.today().weekday()]
    patched = child.call("PATCH", f"/api/profiles/{child.pid}", json={"weekday_limits": {today: 0}})
    assert patched.status_code == 200 and patched.json()["weekday_limits"][today] == 0
    refused = child.start()
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "Daily watch limit exceeded",
        "limit_minutes": 0,
        "watched_minutes": 0,
        "profile_name": "Timmy",
        "reason": "daily_limit",
    }
    bonus = child.call("POST", f"/api/profiles/{child.pid}/bonus", json={"minutes": 15})
    assert bonus.status_code == 201
    assert bonus.json() == {
        "profile_id": child.pid,
        "date": child.today().isoformat(),
        "bonus_minutes": 15,
        "limit_minutes": 0,
        "remaining_minutes": 15,
    }
    started = child.start()
    assert started.status_code == 201 and started.json()["remaining_minutes"] == 15
    rated = child.start(video=1)  # min_age 12 for an 8-year-old
    assert rated.status_code == 403 and rated.json()["reason"] == "age_rating"


def test_a_bedtime_covering_now_refuses_until_the_window_ends(dev: tuple[str, Path]) -> None:
    child = Family(dev, "parent_bedtime")
    now = child.local_now()
    start, end = hhmm(now - timedelta(minutes=1)), hhmm(now + timedelta(minutes=2))
    window = {"bedtime": {"start": start, "end": end}}
    assert child.call("PATCH", f"/api/profiles/{child.pid}", json=window).status_code == 200
    refused = child.start()
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "Bedtime",
        "reason": "bedtime",
        "profile_name": "Timmy",
        "allowed_at": child.local_instant(end),
    }


def test_a_bedtime_set_while_a_session_runs_ends_it_at_the_next_heartbeat(
    dev: tuple[str, Path],
) -> None:
    child = Family(dev, "parent_bedtime_late")
    sid = child.start().json()["session_id"]
    first = child.beat(sid).json()
    assert first["status"] == "active" and first["warning"] is None
    now = child.local_now()
    window = {"start": hhmm(now - timedelta(minutes=1)), "end": hhmm(now + timedelta(hours=1))}
    changed = child.call("PATCH", f"/api/profiles/{child.pid}", json={"bedtime": window})
    assert changed.status_code == 200
    assert child.beat(sid).json()["status"] == "bedtime"
    assert child.beat(sid).status_code == 409
    session = child.call("GET", f"/api/sessions/{sid}").json()
    assert session["end_reason"] == "bedtime"


def test_a_one_minute_limit_warns_on_the_first_heartbeat(dev: tuple[str, Path]) -> None:
    child = Family(dev, "parent_one_minute", daily_limit_minutes=1)
    started = child.start()
    assert started.status_code == 201 and started.json()["remaining_minutes"] == 1
    time.sleep(1)
    beat = child.beat(started.json()["session_id"]).json()
    assert beat["status"] == "active"
    assert beat["warning"] == "daily_limit"
    left = _iso(beat["ends_at"]) - _iso(beat["last_heartbeat"])
    assert timedelta(0) < left < timedelta(minutes=1)  # about 59 s of the 60 are left


def test_a_lock_stops_a_running_session_and_refuses_starts_until_unlocked(
    dev: tuple[str, Path],
) -> None:
    child = Family(dev, "parent_lock")
    sid = child.start().json()["session_id"]
    locked = child.call("POST", f"/api/profiles/{child.pid}/lock", json={"until": None})
    assert locked.json() == {"profile_id": child.pid, "locked": True, "until": None}
    assert child.beat(sid).json()["status"] == "stopped"
    refused = child.start()
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "Watching is paused by a parent",
        "reason": "locked",
        "profile_name": "Timmy",
        "allowed_at": None,
    }
    assert child.call("DELETE", f"/api/profiles/{child.pid}/lock").status_code == 204
    assert child.start().status_code == 201


def test_requests_approved_and_denied_and_the_ledger_explains_the_day(
    dev: tuple[str, Path],
) -> None:
    child = Family(dev, "parent_requests")
    started = child.start().json()
    sid, device = started["session_id"], {"X-Session-Token": started["session_token"]}
    assert child.beat(sid, device).json()["status"] == "active"
    # Today's entry set to 0 while the session runs: its next beat ends it at the limit.
    today = WEEKDAYS[child.today().weekday()]
    limits = {"weekday_limits": {today: 0}}
    assert child.call("PATCH", f"/api/profiles/{child.pid}", json=limits).status_code == 200
    assert child.beat(sid, device).json()["status"] == "limit_reached"

    asked = child.call("POST", "/api/time-requests", device, json={"minutes": 10, "message": "pls"})
    assert asked.status_code == 201, asked.text
    rid = asked.json()["request_id"]
    approve = {"minutes": 7}
    approved = child.call("POST", f"/api/time-requests/{rid}/approve", json=approve)
    assert (approved.json()["status"], approved.json()["granted_minutes"]) == ("approved", 7)
    assert child.call("GET", f"/api/time-requests/{rid}", device).json()["status"] == "approved"
    restarted = child.start()
    assert restarted.status_code == 201 and restarted.json()["remaining_minutes"] == 7

    second = child.call("POST", "/api/time-requests", device, json={"minutes": 30})
    rid2 = second.json()["request_id"]
    assert child.call("POST", f"/api/time-requests/{rid2}/deny").status_code == 200
    cooled = child.call("POST", "/api/time-requests", device, json={"minutes": 30})
    assert cooled.status_code == 429
    wait = int(cooled.headers["retry-after"])  # the default 600 s, less the time since the denial
    assert 590 <= wait <= 600 and cooled.json()["retryAfter"] == wait

    expected = [
        "policy_changed",  # the profile made
        "policy_changed",  # today's entry 0
        "cut_off",
        "time_requested",
        "time_request_approved",
        "bonus",
        "time_requested",
        "time_request_denied",
    ]
    deadline = time.monotonic() + 30
    while True:  # the ledger is a projection: it trails the writes by the projection lag
        ledger = child.call("GET", f"/api/profiles/{child.pid}/days/today").json()
        if [e["type"] for e in ledger["events"]] == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [e["type"] for e in ledger["events"]] == expected
    assert (ledger["date"], ledger["timezone"]) == (child.today().isoformat(), child.zone)
    assert (ledger["limit_minutes"], ledger["bonus_minutes"]) == (0, 7)
    assert ledger["events"][2] == {
        "at": ledger["events"][2]["at"],
        "type": "cut_off",
        "session_id": sid,
        "reason": "daily_limit",
        "device": None,  # started with the parent's token: no paired device watched
    }
    assert ledger["events"][4]["minutes"] == 7 and ledger["events"][5]["request_id"] == rid
    sessions = [(s["session_id"], s["end_reason"]) for s in ledger["sessions"]]
    assert sessions == [(sid, "daily_limit"), (restarted.json()["session_id"], None)]
