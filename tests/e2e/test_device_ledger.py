"""The day's ledger names the paired device that watched (issue 18): a device's sessions and
cut-offs show its id and name, a parent's show none, and a revoked device keeps its name in
past rows, with when it was revoked."""

from __future__ import annotations

from typing import Any

import pytest
from session_samples import Auth, Client, Drain, parent_setup

from adapters.container import Container
from domain.clock import FakeClock
from projections.replay import rebuild, verify


@pytest.fixture
def client(api_on_clock: Client) -> Client:
    return api_on_clock


async def _paired(
    client: Client, clock: FakeClock, parent: dict[str, str], profile_id: int, name: str
) -> dict[str, str]:
    """A device named ``name`` paired to ``profile_id`` as a TV would: its bearer headers."""
    pairing = (await client.post("/api/devices/pair")).json()
    body = {"user_code": pairing["user_code"], "name": name}
    confirmed = await client.post(f"/api/profiles/{profile_id}/devices", json=body, headers=parent)
    assert confirmed.status_code == 201, confirmed.text
    clock.advance(pairing["interval"])
    token = await client.post("/api/devices/token", json={"device_code": pairing["device_code"]})
    assert token.status_code == 200, token.text
    return {
        "Authorization": f"Bearer {token.json()['device_token']}",
        "id": confirmed.json()["device_id"],
    }


async def _watch(
    client: Client, clock: FakeClock, headers: dict[str, str], body: dict[str, Any]
) -> int:
    """Start, beat after 30 s and end a session: its id."""
    started = await client.post("/api/sessions/start", json=body, headers=headers)
    assert started.status_code == 201, started.text
    session_id: int = started.json()["session_id"]
    clock.advance(30)
    beat = await client.post(f"/api/sessions/{session_id}/heartbeat", headers=headers)
    assert beat.status_code == 200 and beat.json()["status"] == "active", beat.text
    clock.advance(30)
    ended = await client.post(f"/api/sessions/{session_id}/end", headers=headers)
    assert ended.status_code == 200, ended.text
    return session_id


async def test_the_ledger_names_the_device_that_watched(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain, container: Container
) -> None:
    parent = auth()
    profile, videos = await parent_setup(client, parent, name="Mia")
    pid = profile["id"]
    tv = await _paired(client, clock, parent, pid, "Living room TV")
    tablet = await _paired(client, clock, parent, pid, "Tablet")
    tv_id, tablet_id = int(tv.pop("id")), int(tablet.pop("id"))

    on_tv = await _watch(client, clock, tv, {"video_id": videos[0]})
    by_parent = await _watch(client, clock, parent, {"profile_id": pid, "video_id": videos[1]})
    # The tablet's session is stopped by the parent (a cut-off in the ledger), then the tablet
    # is revoked: its past rows still name it.
    started = await client.post("/api/sessions/start", json={"video_id": videos[2]}, headers=tablet)
    on_tablet = started.json()["session_id"]
    assert (await client.post(f"/api/sessions/{on_tablet}/stop", headers=parent)).status_code == 200
    clock.advance(10)
    stopped = await client.post(f"/api/sessions/{on_tablet}/heartbeat", headers=tablet)
    assert stopped.json()["status"] == "stopped", stopped.text
    revoked = await client.delete(f"/api/profiles/{pid}/devices/{tablet_id}", headers=parent)
    assert revoked.status_code == 204
    await drain()

    day = await client.get(f"/api/profiles/{pid}/days/today", headers=parent)
    assert day.status_code == 200, day.text
    ledger = day.json()
    devices = {row["session_id"]: row["device"] for row in ledger["sessions"]}
    assert devices[on_tv] == {"device_id": tv_id, "name": "Living room TV", "revoked_at": None}
    assert devices[by_parent] is None
    tablet_row = devices[on_tablet]
    assert tablet_row["device_id"] == tablet_id and tablet_row["name"] == "Tablet"
    assert tablet_row["revoked_at"] is not None and tablet_row["revoked_at"].endswith("Z")
    about_tablet = [e for e in ledger["events"] if e.get("session_id") == on_tablet]
    assert [e["type"] for e in about_tablet] == ["stop_requested", "cut_off"]
    assert all(e["device"] == tablet_row for e in about_tablet)
    assert all("device" not in e for e in ledger["events"] if "session_id" not in e)

    # The device is part of the events: a replay gives the same rows, and the same day.
    assert (await verify(container)).differences == {}
    await rebuild(container)
    again = await client.get(f"/api/profiles/{pid}/days/today", headers=parent)
    assert again.json() == ledger
