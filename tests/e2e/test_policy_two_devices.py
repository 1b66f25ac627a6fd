"""Two devices of one child beating at once, at the end of the day's budget and at bedtime.

A real uvicorn server (``live_server``) on a fake clock, and one HTTP connection per device:
the beats due at the same instant are sent together (``asyncio.gather``), so the server really
handles them interleaved, racing on the profile's command-side count of the day. Several
children play at once to make the races many.

The bound (docs/api.md, "Two devices at once"): the day overshoots its budget by at most the
stretch one heartbeat of each device accrues, and once the budget is used up (or bedtime has
begun) no beat answers ``active``. With beats every ``p_a`` and ``p_b`` seconds that is an
overshoot of at most ``p_a + p_b``; the exact figures for each schedule are worked out below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from live_server import live_server
from session_samples import Auth

from adapters.settings import Settings
from api.app import create_app
from domain.clock import FakeClock
from services.container import build_container

CHILDREN = 6  # children playing at once, two devices each
START = datetime(2026, 5, 4, 20, 20, tzinfo=UTC)  # a Monday, 20:20 UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def server(settings: Settings, clock: FakeClock) -> Iterator[str]:
    container = build_container(settings, clock=clock)
    app = create_app(settings, container=container)
    app.on_shutdown.append(container.close)  # on the server's own event loop
    with live_server(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@dataclass
class Device:
    """One device's session and what its beats answered, as ``(instant, status)``."""

    session_id: int
    period: int
    answers: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return bool(self.answers) and self.answers[-1][1] != "active"


async def _child(
    http: httpx.AsyncClient,
    server: str,
    parent: dict[str, str],
    periods: tuple[int, int],
    **profile: Any,
) -> tuple[list[Device], list[httpx.AsyncClient]]:
    """A profile and a running session on each of two devices, each with its own connection."""
    body = {"name": "Timmy", "age": 8, "timezone": "UTC", **profile}
    pid = (await http.post("/api/profiles", json=body, headers=parent)).json()["id"]
    devices, connections = [], []
    for period in periods:
        video = {"title": "V", "url": "https://example.com/v.mp4"}
        vid = (await http.post("/api/videos", json=video, headers=parent)).json()["id"]
        started = await http.post(
            "/api/sessions/start", json={"profile_id": pid, "video_id": vid}, headers=parent
        )
        assert started.status_code == 201, started.text
        token = started.json()["session_token"]
        connection = httpx.AsyncClient(
            base_url=server, timeout=30, headers={"X-Session-Token": token}
        )
        devices.append(Device(started.json()["session_id"], period))
        connections.append(connection)
    return devices, connections


async def _play(
    clock: FakeClock, children: list[tuple[list[Device], list[httpx.AsyncClient]]]
) -> None:
    """Move the clock from beat instant to beat instant; at each, every device due beats, all
    at once, until every session has ended."""
    begin = clock.now()
    elapsed = 0
    while not all(d.ended for devices, _ in children for d in devices):
        elapsed += 1
        due = [
            (device, connection)
            for devices, connections in children
            for device, connection in zip(devices, connections, strict=True)
            if not device.ended and elapsed % device.period == 0
        ]
        if not due:
            continue
        clock.set(begin + timedelta(seconds=elapsed))
        beats = await asyncio.gather(
            *(c.post(f"/api/sessions/{d.session_id}/heartbeat") for d, c in due)
        )
        for (device, _), beat in zip(due, beats, strict=True):
            assert beat.status_code == 200, beat.text
            device.answers.append((clock.now(), beat.json()["status"]))
        assert elapsed < 3600, "the sessions never ended"


async def _watched_seconds(http: httpx.AsyncClient, parent: dict[str, str], d: Device) -> float:
    session = (await http.get(f"/api/sessions/{d.session_id}", headers=parent)).json()
    return float(session["watched_seconds"])


async def _close(children: list[tuple[list[Device], list[httpx.AsyncClient]]]) -> None:
    for _, connections in children:
        for connection in connections:
            await connection.aclose()


# (period of device A, period of device B) -> the day's total watched seconds, by hand, for a
# budget of 60 s with both sessions started at the same instant. Each beat accrues its period.
LIMIT_SCHEDULES = {
    # t=10: 20 s, t=20: 40 s, t=30: the first beat committed sees 50 (active), the second 60
    # (limit_reached); t=40: the survivor adds 10: 70 (limit_reached). Overshoot 10 s.
    (10, 10): 70.0,
    # t=30: 30 then 60: one device ends; t=60: the other adds 30: 90. Overshoot 30 s.
    (30, 30): 90.0,
    # A at 20, 40 (40 s); B at 45 adds 45: 85, B ends; A at 60 adds 20: 105. Overshoot 45 s,
    # under the bound 20 + 45.
    (20, 45): 105.0,
}


@pytest.mark.parametrize("periods", list(LIMIT_SCHEDULES), ids=lambda p: f"{p[0]}s-{p[1]}s")
async def test_two_devices_at_the_limit_never_both_pass(
    http: httpx.AsyncClient, server: str, auth: Auth, clock: FakeClock, periods: tuple[int, int]
) -> None:
    parent = auth()
    budget = 60.0
    children = [
        await _child(http, server, parent, periods, daily_limit_minutes=1) for _ in range(CHILDREN)
    ]
    try:
        await _play(clock, children)
    finally:
        await _close(children)
    for devices, _ in children:
        totals = [await _watched_seconds(http, parent, d) for d in devices]
        # Whichever device's beat committed first, the day's total is the same.
        assert sum(totals) == LIMIT_SCHEDULES[periods]
        assert sum(totals) - budget <= sum(periods)  # one beat's stretch per device
        # Once the budget is used up, no beat answers active: the instant it was reached is
        # the first at which the watched time so far (each beat accrues its period) was >= 60.
        beats = sorted((at, d.period) for d in devices for at, _ in d.answers)
        reached, so_far = None, 0
        for at, period in beats:
            so_far += period
            if so_far >= budget:
                reached = at
                break
        assert reached is not None
        at_reach = [s for d in devices for at, s in d.answers if at == reached]
        assert at_reach.count("active") < len(at_reach)  # never both
        assert all(s != "active" for d in devices for at, s in d.answers if at > reached)
        assert sorted(d.answers[-1][1] for d in devices) == ["limit_reached", "limit_reached"]


# Bedtime from 20:30 (START is 20:20): beats every ``p`` seconds from START; the first beat at
# or after 20:30:00 (600 s in) ends each session, and the time it accrued past 20:30 is that
# device's overshoot: ceil(600 / p) * p - 600.
BEDTIME_SCHEDULES = {
    (30, 30): (0, 0),  # both beat at 20:30:00 exactly, together: both end, nothing past
    (45, 50): (30, 0),  # A: 14 * 45 = 630 s; B: 12 * 50 = 600 s
    (90, 35): (30, 30),  # A: 7 * 90 = 630 s; B: 18 * 35 = 630 s, the same instant
}


@pytest.mark.parametrize("periods", list(BEDTIME_SCHEDULES), ids=lambda p: f"{p[0]}s-{p[1]}s")
async def test_two_devices_at_bedtime_both_end_at_their_first_beat_past_it(
    http: httpx.AsyncClient, server: str, auth: Auth, clock: FakeClock, periods: tuple[int, int]
) -> None:
    parent = auth()
    bedtime_at = START + timedelta(minutes=10)
    children = [
        await _child(http, server, parent, periods, bedtime={"start": "20:30", "end": "07:00"})
        for _ in range(CHILDREN)
    ]
    try:
        await _play(clock, children)
    finally:
        await _close(children)
    for devices, _ in children:
        for device, overshoot in zip(devices, BEDTIME_SCHEDULES[periods], strict=True):
            assert all(s == "active" for at, s in device.answers if at < bedtime_at)
            past = [(at, s) for at, s in device.answers if at >= bedtime_at]
            assert past == [(bedtime_at + timedelta(seconds=overshoot), "bedtime")]
            watched = await _watched_seconds(http, parent, device)
            assert watched - 600 == overshoot <= device.period
