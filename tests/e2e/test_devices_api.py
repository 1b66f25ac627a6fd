"""Kids devices (CONTRACT §14): pairing by code, the device token's reach, revocation."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from session_samples import Auth, Client, Drain, parent_setup, session_events

from adapters.container import Container
from adapters.tables import devices as devices_table
from domain.clock import FakeClock
from domain.devices import USER_CODE_ALPHABET
from projections.replay import verify


@pytest.fixture
def client(api_on_clock: Client) -> Client:
    return api_on_clock


async def _pair(client: Client) -> dict[str, Any]:
    answer = await client.post("/api/devices/pair")  # no credential, no CSRF token
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _poll(client: Client, pairing: dict[str, Any]) -> Any:
    return await client.post("/api/devices/token", json={"device_code": pairing["device_code"]})


async def _confirm(
    client: Client, parent: dict[str, str], profile_id: int, user_code: str, name: str = "TV"
) -> Any:
    body = {"user_code": user_code, "name": name}
    return await client.post(f"/api/profiles/{profile_id}/devices", json=body, headers=parent)


async def _paired(
    client: Client, clock: FakeClock, parent: dict[str, str], profile_id: int
) -> dict[str, Any]:
    """A device paired to ``profile_id``: its token answer."""
    pairing = await _pair(client)
    assert (await _confirm(client, parent, profile_id, pairing["user_code"])).status_code == 201
    clock.advance(pairing["interval"])
    token = await _poll(client, pairing)
    assert token.status_code == 200, token.text
    return token.json()  # type: ignore[no-any-return]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_tv_pairs_plays_is_refused_elsewhere_and_is_cut_off_by_revocation(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain, container: Container
) -> None:
    parent = auth()
    profile, videos = await parent_setup(client, parent, name="Mia", daily_limit_minutes=30)
    pairing = await _pair(client)
    assert pairing["expires_in"] == 600 and pairing["interval"] == 5
    letters = pairing["user_code"].replace("-", "")
    assert len(pairing["user_code"]) == 9 and pairing["user_code"][4] == "-"
    assert set(letters) <= set(USER_CODE_ALPHABET)

    assert (await _poll(client, pairing)).json() == {"error": "authorization_pending"}
    clock.advance(5)
    # The parent types the code as a person would: lower case, without the dash.
    confirmed = await _confirm(client, parent, profile["id"], letters.lower(), "Living room TV")
    assert confirmed.status_code == 201, confirmed.text
    device = confirmed.json()
    assert device["profile_id"] == profile["id"] and device["name"] == "Living room TV"
    assert device["created_at"] == "2026-05-06T03:00:05.000Z"

    clock.advance(5)
    issued = await _poll(client, pairing)
    assert issued.status_code == 200, issued.text
    token = issued.json()
    assert token["device_token"].startswith("dev_") and len(token["device_token"]) >= 4 + 43
    assert (token["device_id"], token["profile_id"]) == (device["device_id"], profile["id"])
    device_headers = _bearer(token["device_token"])

    home = await client.get("/api/device", headers=device_headers)
    assert home.status_code == 200, home.text
    assert home.json() | {"device_id": 0} == {
        "device_id": 0,
        "device_name": "Living room TV",
        "profile_id": profile["id"],
        "name": "Mia",
        "age": 8,
        "daily_limit_minutes": 30,
        "watched_today_minutes": 0,
        "remaining_minutes": 30,
        "bedtime": None,
        "locked": False,
    }
    listed = await client.get("/api/device/videos?limit=3", headers=device_headers)
    assert listed.status_code == 200
    assert [v["id"] for v in listed.json()["videos"]] == videos[::-1][:3]
    assert listed.json()["metadata"]["totalCount"] == 4

    started = await client.post(
        "/api/sessions/start", json={"video_id": videos[0]}, headers=device_headers
    )
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    assert started.json()["profile_id"] == profile["id"]
    clock.advance(30)
    beat = await client.post(f"/api/sessions/{session_id}/heartbeat", headers=device_headers)
    assert beat.status_code == 200 and beat.json()["status"] == "active"
    assert (
        await client.get(f"/api/sessions/{session_id}", headers=device_headers)
    ).status_code == 200
    clock.advance(30)
    ended = await client.post(f"/api/sessions/{session_id}/end", headers=device_headers)
    assert ended.status_code == 200, ended.text
    events = await session_events(container.redis, session_id)
    assert events[0].device_id == device["device_id"]  # type: ignore[union-attr]
    assert {e.actor for e in events} == {f"device:{device['device_id']}"}

    # Routes for parents: 403 for a device token, reads and writes, Medio and progress families.
    for method, path in [
        ("GET", "/api/profiles"),
        ("GET", f"/api/profiles/{profile['id']}/stats"),
        ("GET", f"/api/profiles/{profile['id']}/devices"),
        ("GET", f"/api/videos/{videos[0]}/stream"),
        ("POST", "/api/videos"),
        ("GET", "/api/progress/u1"),
        ("POST", "/api/progress"),
    ]:
        refused = await client.request(method, path, headers=device_headers, json={})
        assert refused.status_code == 403, path
    # ... and another of the parent's profiles is not the device's to start.
    other = await client.post("/api/profiles", json={"name": "Leo", "age": 5}, headers=parent)
    refused = await client.post(
        "/api/sessions/start",
        json={"profile_id": other.json()["id"], "video_id": videos[0]},
        headers=device_headers,
    )
    assert refused.status_code == 403

    # The parent lists and revokes: the token is refused everywhere from the next request.
    listed_devices = await client.get(f"/api/profiles/{profile['id']}/devices", headers=parent)
    assert listed_devices.json() == {"devices": [device]}
    started = await client.post(
        "/api/sessions/start", json={"video_id": videos[1]}, headers=device_headers
    )
    session_id = started.json()["session_id"]
    revoked = await client.delete(
        f"/api/profiles/{profile['id']}/devices/{device['device_id']}", headers=parent
    )
    assert revoked.status_code == 204
    for method, path in [
        ("GET", "/api/device"),
        ("GET", "/api/device/videos"),
        ("POST", "/api/sessions/start"),
        ("POST", f"/api/sessions/{session_id}/heartbeat"),
        ("POST", f"/api/sessions/{session_id}/end"),
        ("GET", f"/api/sessions/{session_id}"),
        ("GET", "/api/profiles"),
    ]:
        answer = await client.request(
            method, path, headers=device_headers, json={"video_id": videos[0]}
        )
        assert answer.status_code == 401, (path, answer.text)
    assert (await client.get(f"/api/profiles/{profile['id']}/devices", headers=parent)).json() == {
        "devices": []
    }
    again = await client.delete(
        f"/api/profiles/{profile['id']}/devices/{device['device_id']}", headers=parent
    )
    assert again.status_code == 404

    # Pairing, confirmation, the token and the revocation are events; the record follows them.
    await drain()
    async with container.engine.connect() as conn:
        mine = devices_table.c.profile_id == profile["id"]  # other tests' devices share the table
        row = (await conn.execute(sa.select(devices_table).where(mine))).one()
    assert row.device_id == device["device_id"] and row.revoked_at is not None
    assert row.token_hash and row.token_hash not in token["device_token"]
    assert (await verify(container)).differences == {}


async def test_a_code_is_used_once(client: Client, auth: Auth, clock: FakeClock) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    pairing = await _pair(client)
    assert (await _confirm(client, parent, profile["id"], pairing["user_code"])).status_code == 201
    second = await _confirm(client, parent, profile["id"], pairing["user_code"])
    assert second.status_code == 400
    assert second.json() == {
        "errors": [
            {
                "type": "field",
                "msg": "Unknown or expired code",
                "path": "user_code",
                "location": "body",
            }
        ]
    }
    clock.advance(5)
    assert (await _poll(client, pairing)).status_code == 200
    clock.advance(5)
    assert (await _poll(client, pairing)).json() == {"error": "invalid_grant"}  # token once


async def test_an_expired_code_can_be_neither_confirmed_nor_collected(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    pairing = await _pair(client)
    clock.advance(600)
    refused = await _confirm(client, parent, profile["id"], pairing["user_code"])
    assert refused.status_code == 400 and refused.json()["errors"][0]["path"] == "user_code"
    assert (await _poll(client, pairing)).json() == {"error": "expired_token"}
    # Confirmed in time but never collected within the code's life: expired as well.
    late = await _pair(client)
    assert (await _confirm(client, parent, profile["id"], late["user_code"])).status_code == 201
    clock.advance(600)
    answer = await _poll(client, late)
    assert (answer.status_code, answer.json()) == (400, {"error": "expired_token"})


async def test_another_parents_profile_is_404_and_the_code_stays_usable(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    owner, stranger = auth(), auth()
    profile, _videos = await parent_setup(client, owner)
    pairing = await _pair(client)
    refused = await _confirm(client, stranger, profile["id"], pairing["user_code"])
    assert refused.status_code == 404
    assert (
        await client.get(f"/api/profiles/{profile['id']}/devices", headers=stranger)
    ).status_code == 404
    assert (await _confirm(client, owner, profile["id"], pairing["user_code"])).status_code == 201
    device = await client.get(f"/api/profiles/{profile['id']}/devices", headers=owner)
    device_id = device.json()["devices"][0]["device_id"]
    revoke = await client.delete(
        f"/api/profiles/{profile['id']}/devices/{device_id}", headers=stranger
    )
    assert revoke.status_code == 404


async def test_polling_faster_than_the_interval_is_told_to_slow_down(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    pairing = await _pair(client)
    assert (await _poll(client, pairing)).json() == {"error": "authorization_pending"}
    clock.advance(2)
    fast = await _poll(client, pairing)
    assert (fast.status_code, fast.json()) == (400, {"error": "slow_down"})
    assert (await _confirm(client, parent, profile["id"], pairing["user_code"])).status_code == 201
    clock.advance(2)  # measured from the last poll, the refused one included
    assert (await _poll(client, pairing)).json() == {"error": "slow_down"}
    clock.advance(5)
    assert (await _poll(client, pairing)).status_code == 200
    unknown = await client.post("/api/devices/token", json={"device_code": "nope"})
    assert unknown.json() == {"error": "invalid_grant"}


async def test_a_device_of_parent_a_cannot_start_a_video_of_parent_b(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent_a, parent_b = auth(), auth()
    profile_a, _videos_a = await parent_setup(client, parent_a)
    _profile_b, videos_b = await parent_setup(client, parent_b)
    device = await _paired(client, clock, parent_a, profile_a["id"])
    answer = await client.post(
        "/api/sessions/start",
        json={"video_id": videos_b[0]},
        headers=_bearer(device["device_token"]),
    )
    assert answer.status_code == 404 and answer.json()["error"]["message"] == "Video not found"


async def test_wrong_codes_from_one_parent_are_limited(client: Client, auth: Auth) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    for _ in range(10):
        assert (await _confirm(client, parent, profile["id"], "BCDF-GHJK")).status_code == 400
    limited = await _confirm(client, parent, profile["id"], "BCDF-GHJK")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.json()["message"] == "Too many wrong codes. Please try again later."


async def test_deleting_a_profile_revokes_its_devices(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    device = await _paired(client, clock, parent, profile["id"])
    assert (
        await client.delete(f"/api/profiles/{profile['id']}", headers=parent)
    ).status_code == 204
    assert (
        await client.get("/api/device", headers=_bearer(device["device_token"]))
    ).status_code == 401


async def test_a_parent_token_on_a_device_route_is_403_and_none_is_401(
    client: Client, auth: Auth
) -> None:
    assert (await client.get("/api/device", headers=auth())).status_code == 403
    assert (await client.get("/api/device")).status_code == 401
    assert (await client.get("/api/device", headers=_bearer("dev_forged"))).status_code == 401


async def test_a_device_shows_its_childs_policy_lists_only_allowed_videos_and_asks_for_time(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    bedtime = {"start": "20:00", "end": "07:00"}
    profile, videos = await parent_setup(
        client, parent, name="Mia", daily_limit_minutes=30, bedtime=bedtime
    )
    pid = profile["id"]
    rated = await client.patch(f"/api/videos/{videos[1]}", json={"min_age": 12}, headers=parent)
    assert rated.status_code == 200, rated.text
    token = await _paired(client, clock, parent, pid)
    device_headers = _bearer(token["device_token"])
    given = await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 15}, headers=parent)
    assert given.status_code == 201, given.text
    assert (await client.post(f"/api/profiles/{pid}/lock", json={}, headers=parent)).is_success

    home = (await client.get("/api/device", headers=device_headers)).json()
    assert (home["bedtime"], home["locked"]) == (bedtime, True)
    assert (home["daily_limit_minutes"], home["remaining_minutes"]) == (45, 45)
    assert (await client.delete(f"/api/profiles/{pid}/lock", headers=parent)).status_code == 204
    assert (await client.get("/api/device", headers=device_headers)).json()["locked"] is False

    listed = (await client.get("/api/device/videos", headers=device_headers)).json()
    assert [v["id"] for v in listed["videos"]] == [videos[3], videos[2], videos[0]]
    assert listed["metadata"]["totalCount"] == 3

    asked = await client.post(
        "/api/time-requests", json={"minutes": 10, "message": "One more?"}, headers=device_headers
    )
    assert asked.status_code == 201, asked.text
    assert (asked.json()["profile_id"], asked.json()["status"]) == (pid, "pending")
    rid = asked.json()["request_id"]
    approved = await client.post(f"/api/time-requests/{rid}/approve", headers=parent)
    assert approved.status_code == 200, approved.text
    polled = await client.get(f"/api/time-requests/{rid}", headers=device_headers)
    assert polled.status_code == 200 and polled.json()["status"] == "approved"
    assert (await client.get("/api/device", headers=device_headers)).json()[
        "remaining_minutes"
    ] == 55

    # Another device of the same parent did not ask: the request is not its to read.
    other = _bearer((await _paired(client, clock, parent, pid))["device_token"])
    assert (await client.get(f"/api/time-requests/{rid}", headers=other)).status_code == 404
    revoked = await client.delete(
        f"/api/profiles/{pid}/devices/{token['device_id']}", headers=parent
    )
    assert revoked.status_code == 204
    again = await client.post("/api/time-requests", json={"minutes": 10}, headers=device_headers)
    assert again.status_code == 401
    assert (
        await client.get(f"/api/time-requests/{rid}", headers=device_headers)
    ).status_code == 401
