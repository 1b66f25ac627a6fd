"""A TV pairs, plays and is revoked across two real ``medio api`` processes (CONTRACT §14).

Every step alternates between the two processes, as requests behind a load balancer do, in
real time (the device waits ``interval`` seconds between polls as a TV would). The revocation
is answered by one process and must cut the token off on the other at its very next request:
no process may keep a verdict about a device token. (``two_apis``: ``tests/e2e/conftest.py``.)
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from adapters.settings import Settings
from api.auth import create_token


def _ok(answer: httpx.Response, status: int) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def test_a_tv_pairs_plays_and_is_cut_off_on_every_process(
    two_apis: tuple[httpx.Client, httpx.Client], settings: Settings
) -> None:
    a, b = two_apis
    parent = {"Authorization": f"Bearer {create_token(settings, 'parent_tv_two_processes')}"}
    profile = _ok(a.post("/api/profiles", json={"name": "Noa", "age": 7}, headers=parent), 201)
    video = _ok(
        b.post(
            "/api/videos", json={"title": "Ducks", "url": "https://x.test/d.mp4"}, headers=parent
        ),
        201,
    )

    # The TV asks for a code and polls; the parent confirms on the other process.
    pairing = _ok(a.post("/api/devices/pair"), 201)
    poll = {"device_code": pairing["device_code"]}
    assert _ok(b.post("/api/devices/token", json=poll), 400) == {"error": "authorization_pending"}
    confirm = {"user_code": pairing["user_code"], "name": "Kitchen tablet"}
    _ok(a.post(f"/api/profiles/{profile['id']}/devices", json=confirm, headers=parent), 201)
    assert _ok(b.post("/api/devices/token", json=poll), 400) == {"error": "slow_down"}
    time.sleep(pairing["interval"])
    token = _ok(a.post("/api/devices/token", json=poll), 200)
    tv = {"Authorization": f"Bearer {token['device_token']}"}

    # It plays a video with heartbeats, each request on another process.
    assert _ok(b.get("/api/device", headers=tv), 200)["name"] == "Noa"
    videos = _ok(a.get("/api/device/videos", headers=tv), 200)["videos"]
    assert [v["id"] for v in videos] == [video["id"]]
    session = _ok(b.post("/api/sessions/start", json={"video_id": video["id"]}, headers=tv), 201)
    beat = f"/api/sessions/{session['session_id']}/heartbeat"
    assert _ok(a.post(beat, json={"position": 5}, headers=tv), 200)["status"] == "active"
    assert _ok(b.post(beat, json={"position": 9}, headers=tv), 200)["status"] == "active"
    # A route for parents is refused.
    assert b.get("/api/profiles", headers=tv).status_code == 403
    assert a.post("/api/videos", json={"title": "x"}, headers=tv).status_code == 403

    # Both processes have just served the token; the revocation on one cuts off both at once.
    revoke = f"/api/profiles/{profile['id']}/devices/{token['device_id']}"
    assert a.delete(revoke, headers=parent).status_code == 204
    for client in (b, a):
        assert client.get("/api/device", headers=tv).status_code == 401
        assert client.get("/api/device/videos", headers=tv).status_code == 401
        assert client.post(beat, headers=tv).status_code == 401
        assert (
            client.post("/api/sessions/start", json={"video_id": 1}, headers=tv).status_code == 401
        )
        assert client.get("/api/profiles", headers=tv).status_code == 401
    assert _ok(b.get(f"/api/profiles/{profile['id']}/devices", headers=parent), 200) == {
        "devices": []
    }
