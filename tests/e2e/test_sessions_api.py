"""``/api/sessions`` over HTTP: the seed's bodies, auth by parent or session token, 4xx cases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from session_samples import Auth, Client, Drain, csrf_headers, daily_limit_refusal, parent_setup

from domain.clock import FakeClock


@pytest.fixture
def client(api_on_clock: Client) -> Client:
    return api_on_clock


async def _start(client: Client, headers: dict[str, str], **profile: Any) -> dict[str, Any]:
    created, videos = await parent_setup(client, headers, **profile)
    response = await client.post(
        "/api/sessions/start",
        json={"profile_id": created["id"], "video_id": videos[0]},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "videos": videos, "profile": created}


async def test_start_returns_the_seed_fields_and_a_session_token(
    client: Client, auth: Auth
) -> None:
    headers = auth()
    body = await _start(client, headers, daily_limit_minutes=45)
    assert body["started_at"] == "2026-05-06T03:00:00.000Z"
    assert (body["daily_limit_minutes"], body["watched_today_minutes"]) == (45, 0)
    assert body["remaining_minutes"] == 45
    assert isinstance(body["session_id"], int)
    assert (body["profile_id"], body["video_id"]) == (body["profile"]["id"], body["videos"][0])
    assert body["session_token"].startswith("sess_")


async def test_heartbeat_end_and_read(client: Client, auth: Auth, clock: FakeClock) -> None:
    headers = auth()
    session = await _start(client, headers)
    sid = session["session_id"]
    clock.advance(60)
    beat = await client.post(
        f"/api/sessions/{sid}/heartbeat", json={"position": 61.5}, headers=headers
    )
    assert beat.status_code == 200
    assert beat.json() == {
        "status": "active",
        "session_id": sid,
        "last_heartbeat": "2026-05-06T03:01:00.000Z",
        "remaining_minutes": 59,
        "ends_at": "2026-05-06T04:00:00.000Z",  # the 59 minutes left, watched without pause
        "warning": None,
    }
    for _ in range(14):  # beats every minute until 03:15, then the end at 03:15:30
        clock.advance(60)
        await client.post(f"/api/sessions/{sid}/heartbeat", headers=headers)
    clock.advance(30)
    ended = await client.post(f"/api/sessions/{sid}/end", headers=headers)
    assert ended.status_code == 200
    assert ended.json() == {
        "session_id": sid,
        "duration_minutes": 15.5,
        "ended_at": "2026-05-06T03:15:30.000Z",
    }
    read = (await client.get(f"/api/sessions/{sid}", headers=headers)).json()
    assert (read["status"], read["end_reason"], read["watched_seconds"]) == (
        "ended",
        "ended",
        930.0,
    )
    assert read["position"] == 61.5


async def test_a_player_silent_past_the_timeout_cannot_resume(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    clock.advance(60)
    await client.post(f"/api/sessions/{sid}/heartbeat", headers=headers)
    clock.advance(180)  # MEDIO_SESSION_TIMEOUT_SECONDS without a beat
    read = (await client.get(f"/api/sessions/{sid}", headers=headers)).json()
    assert (read["status"], read["end_reason"]) == ("ended", "timeout")
    assert read["ended_at"] == "2026-05-06T03:01:00.000Z"
    assert (await client.post(f"/api/sessions/{sid}/heartbeat", headers=headers)).status_code == 409


async def test_heartbeat_without_body_is_fine(client: Client, auth: Auth, clock: FakeClock) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    clock.advance(30)
    response = await client.post(f"/api/sessions/{sid}/heartbeat", headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "active"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_heartbeat_wrong_method_is_405_in_the_envelope(
    client: Client, auth: Auth, method: str
) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    response = await client.request(method, f"/api/sessions/{sid}/heartbeat", headers=headers)
    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("path_id", ["abc", "1.5", "-"])
async def test_heartbeat_on_a_non_integer_id_is_404(
    client: Client, auth: Auth, path_id: str
) -> None:
    response = await client.post(f"/api/sessions/{path_id}/heartbeat", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


async def test_heartbeat_answers_json_with_its_length_and_request_id(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    headers = auth()
    sid = (await _start(client, headers, daily_limit_minutes=45))["session_id"]
    clock.advance(90)
    response = await client.post(
        f"/api/sessions/{sid}/heartbeat",
        json={"position": 12},
        headers={**headers, "X-Request-ID": "beat-1"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-request-id"] == "beat-1"
    assert response.json() == {
        "status": "active",
        "session_id": sid,
        "last_heartbeat": "2026-05-06T03:01:30.000Z",
        "remaining_minutes": 44,
        "ends_at": "2026-05-06T03:45:00.000Z",
        "warning": None,
    }


async def test_heartbeat_or_end_after_end_is_409(client: Client, auth: Auth) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    assert (await client.post(f"/api/sessions/{sid}/end", headers=headers)).status_code == 200
    for action in ("heartbeat", "end"):
        response = await client.post(f"/api/sessions/{sid}/{action}", headers=headers)
        assert response.status_code == 409
        error = response.json()["error"]
        assert (error["status"], error["message"]) == (409, "Session has already ended")


async def test_concurrent_heartbeats_count_once(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    clock.advance(45)
    responses = await asyncio.gather(
        *(client.post(f"/api/sessions/{sid}/heartbeat", headers=headers) for _ in range(12))
    )
    assert {r.status_code for r in responses} == {200}
    read = (await client.get(f"/api/sessions/{sid}", headers=headers)).json()
    assert read["watched_seconds"] == 45.0


async def test_session_token_works_as_bearer_or_header(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    session = await _start(client, auth())
    sid, token = session["session_id"], session["session_token"]
    clock.advance(30)
    as_bearer = await client.post(
        f"/api/sessions/{sid}/heartbeat", headers={"Authorization": f"Bearer {token}"}
    )
    assert as_bearer.status_code == 200
    clock.advance(30)
    as_header = await client.post(
        f"/api/sessions/{sid}/heartbeat",
        headers={"X-Session-Token": token, **await csrf_headers(client)},
    )
    assert as_header.status_code == 200
    read = await client.get(f"/api/sessions/{sid}", headers={"X-Session-Token": token})
    assert read.json()["watched_seconds"] == 60.0


async def test_other_parents_and_other_sessions_tokens_get_404(client: Client, auth: Auth) -> None:
    first = await _start(client, auth())
    second = await _start(client, auth())
    stranger = auth()
    other_token = {"Authorization": f"Bearer {second['session_token']}"}
    for headers in (stranger, other_token, {"Authorization": "Bearer sess_forged"}):
        response = await client.post(
            f"/api/sessions/{first['session_id']}/heartbeat", headers=headers
        )
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Session not found"
    missing = await client.get("/api/sessions/999999999999", headers=stranger)
    assert missing.status_code == 404


async def test_missing_credentials_are_401(client: Client, auth: Auth) -> None:
    sid = (await _start(client, auth()))["session_id"]
    response = await client.get(f"/api/sessions/{sid}")
    assert response.status_code == 401
    no_token = await client.post("/api/sessions/start", json={}, headers=await csrf_headers(client))
    assert no_token.status_code == 401


async def test_start_needs_the_callers_profile_and_video(client: Client, auth: Auth) -> None:
    owner = auth()
    profile, videos = await parent_setup(client, owner)
    intruder = auth()
    _other_profile, other_videos = await parent_setup(client, intruder)
    cases = [
        (intruder, {"profile_id": profile["id"], "video_id": other_videos[0]}, "Profile not found"),
        (owner, {"profile_id": profile["id"], "video_id": other_videos[0]}, "Video not found"),
    ]
    for headers, body, message in cases:
        response = await client.post("/api/sessions/start", json=body, headers=headers)
        assert response.status_code == 404
        assert response.json()["error"]["message"] == message
    assert videos  # the owner's own pair is fine:
    ok = {"profile_id": profile["id"], "video_id": videos[1]}
    assert (await client.post("/api/sessions/start", json=ok, headers=owner)).status_code == 201


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["profile_id", "video_id"]),
        ({"profile_id": "1", "video_id": 2}, ["profile_id"]),
        ({"profile_id": 1, "video_id": 0}, ["video_id"]),
        ({"profile_id": True, "video_id": 2**70}, ["profile_id", "video_id"]),
    ],
)
async def test_bad_start_bodies_name_the_fields(
    client: Client, auth: Auth, body: dict[str, Any], fields: list[str]
) -> None:
    response = await client.post("/api/sessions/start", json=body, headers=auth())
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["path"] for e in errors] == fields
    assert all(e["type"] == "field" and e["location"] == "body" for e in errors)


async def test_non_object_and_malformed_bodies_are_400(client: Client, auth: Auth) -> None:
    headers = auth()
    assert (await client.post("/api/sessions/start", json=[1], headers=headers)).status_code == 400
    malformed = await client.post(
        "/api/sessions/start",
        content=b"{nope",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400


@pytest.mark.parametrize("position", [-1, "12", 604_801, None])
async def test_bad_positions_are_400(
    client: Client, auth: Auth, position: Any, clock: FakeClock
) -> None:
    headers = auth()
    sid = (await _start(client, headers))["session_id"]
    response = await client.post(
        f"/api/sessions/{sid}/heartbeat", json={"position": position}, headers=headers
    )
    if position is None:
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert response.json()["errors"][0]["path"] == "position"


async def test_kids_mode_is_refused_until_the_parent_opts_in(client: Client, auth: Auth) -> None:
    parent = auth()
    profile, videos = await parent_setup(client, parent, daily_limit_minutes=30)
    body = {"profile_id": profile["id"], "video_id": videos[0]}
    refused = await client.post(
        "/api/sessions/start/public", json=body, headers=await csrf_headers(client)
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Kids mode is not enabled for this profile"
    opted = await client.patch(
        f"/api/profiles/{profile['id']}", json={"kids_mode": True}, headers=parent
    )
    assert opted.status_code == 200
    started = await client.post(
        "/api/sessions/start/public", json=body, headers=await csrf_headers(client)
    )
    assert started.status_code == 201
    assert set(started.json()) == {"session_id", "remaining_minutes", "session_token"}
    assert started.json()["remaining_minutes"] == 30
    # the device holds no parent token: its session token is enough
    token = {"Authorization": f"Bearer {started.json()['session_token']}"}
    sid = started.json()["session_id"]
    assert (await client.post(f"/api/sessions/{sid}/heartbeat", headers=token)).status_code == 200
    assert (await client.post(f"/api/sessions/{sid}/end", headers=token)).status_code == 200
    # and the parent can read the kids-mode session
    assert (await client.get(f"/api/sessions/{sid}", headers=parent)).json()["status"] == "ended"


async def test_public_start_checks_the_video_belongs_to_the_profiles_parent(
    client: Client, auth: Auth
) -> None:
    profile, _videos = await parent_setup(client, auth(), kids_mode=True)
    _other, strangers_videos = await parent_setup(client, auth())
    body = {"profile_id": profile["id"], "video_id": strangers_videos[0]}
    response = await client.post(
        "/api/sessions/start/public", json=body, headers=await csrf_headers(client)
    )
    assert response.status_code == 404
    unknown = {"profile_id": 10**15, "video_id": 1}
    response = await client.post(
        "/api/sessions/start/public", json=unknown, headers=await csrf_headers(client)
    )
    assert response.status_code == 404


async def test_limit_reached_mid_video_then_start_is_403_with_the_seed_body(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain
) -> None:
    headers = auth()
    session = await _start(client, headers, daily_limit_minutes=2, name="Bobby")
    sid = session["session_id"]
    responses = []
    for _ in range(3):
        clock.advance(60)
        responses.append(await client.post(f"/api/sessions/{sid}/heartbeat", headers=headers))
        await drain()
    assert [r.json()["status"] for r in responses[:2]] == ["active", "limit_reached"]
    assert responses[1].json()["remaining_minutes"] == 0
    assert responses[2].status_code == 409  # the server had already ended it
    body = {"profile_id": session["profile"]["id"], "video_id": session["videos"][1]}
    refused = await client.post("/api/sessions/start", json=body, headers=headers)
    assert (refused.status_code, refused.json()) == daily_limit_refusal(2, 2, "Bobby")
    read = (await client.get(f"/api/sessions/{sid}", headers=headers)).json()
    assert read["end_reason"] == "daily_limit"
