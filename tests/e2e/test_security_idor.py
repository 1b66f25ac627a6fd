"""IDOR matrix: a second parent tries every route that takes an id with the first parent's ids.

Every attempt is a 404 (or the progress family's 403: CONTRACT §4 ties ``clerkId`` to the
token), the answer carries none of the owner's data, and afterwards the owner's profile, videos,
uploaded file, session and progress are exactly as before.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from security_checks import assert_error_shape, assert_no_internals

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x04" * 64

# Every route with an id in its path or body, as (method, path template, body template).
MATRIX: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/profiles/{profile_id}", None),
    ("PATCH", "/api/profiles/{profile_id}", {"name": "Stolen", "daily_limit_minutes": 1440}),
    ("DELETE", "/api/profiles/{profile_id}", None),
    ("GET", "/api/profiles/{profile_id}/stats", None),
    ("GET", "/api/videos/{video_id}", None),
    ("PATCH", "/api/videos/{video_id}", {"title": "Stolen"}),
    ("DELETE", "/api/videos/{video_id}", None),
    ("GET", "/api/videos/{video_id}/stream", None),
    ("GET", "/api/videos/{upload_id}", None),
    ("PATCH", "/api/videos/{upload_id}", {"title": "Stolen"}),
    ("DELETE", "/api/videos/{upload_id}", None),
    ("GET", "/api/videos/{upload_id}/stream", None),
    ("GET", "/api/videos/{upload_id}/thumbnail", None),
    ("GET", "/api/progress/{clerk_id}", None),
    ("GET", "/api/progress/{clerk_id}/{tmdb_id}", None),
    ("DELETE", "/api/progress/{clerk_id}/{tmdb_id}", None),
    ("POST", "/api/progress", {"clerkId": "{clerk_id}", "tmdbId": "{tmdb_id}", "currentTime": 1}),
    ("GET", "/api/progress/series/{clerk_id}", None),
    ("GET", "/api/progress/series/{clerk_id}/{series_id}", None),
    ("GET", "/api/progress/series/{clerk_id}/{series_id}/{tmdb_id}", None),
    ("DELETE", "/api/progress/series/{clerk_id}/{series_id}", None),
    (
        "POST",
        "/api/progress/series",
        {"clerkId": "{clerk_id}", "seriesId": "{series_id}", "tmdbId": "x", "currentTime": 1},
    ),
    ("GET", "/api/sessions/{session_id}", None),
    ("POST", "/api/sessions/{session_id}/heartbeat", {"position": 1}),
    ("POST", "/api/sessions/{session_id}/end", None),
    ("POST", "/api/sessions/start", {"profile_id": "{profile_id}", "video_id": "{own_video}"}),
    ("POST", "/api/sessions/start", {"profile_id": "{own_profile}", "video_id": "{video_id}"}),
    ("GET", "/api/profiles/{profile_id}/devices", None),
    ("POST", "/api/profiles/{profile_id}/devices", {"user_code": "{user_code}", "name": "Stolen"}),
    ("DELETE", "/api/profiles/{profile_id}/devices/{device_id}", None),
    ("DELETE", "/api/profiles/{own_profile}/devices/{device_id}", None),
    ("POST", "/api/profiles/{profile_id}/bonus", {"minutes": 30}),
    ("POST", "/api/profiles/{profile_id}/lock", {}),
    ("DELETE", "/api/profiles/{profile_id}/lock", None),
    ("GET", "/api/profiles/{profile_id}/time-requests", None),
    ("GET", "/api/profiles/{profile_id}/days/{day}", None),
    ("POST", "/api/time-requests", {"minutes": 15, "profile_id": "{profile_id}"}),
    ("GET", "/api/time-requests/{request_id}", None),
    ("POST", "/api/time-requests/{request_id}/approve", {"minutes": 30}),
    ("POST", "/api/time-requests/{request_id}/deny", None),
    ("POST", "/api/sessions/{session_id}/stop", None),
]


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
async def client(settings: Settings, media_root: Path) -> AsyncIterator[Client]:
    own = msgspec.structs.replace(settings, media_root=str(media_root))
    async with AsyncTestClient(app=create_app(own)) as test_client:
        yield test_client


async def _created(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _parent(client: Client, auth: Auth, secret: str) -> dict[str, Any]:
    """A parent with a profile, a URL video, an upload with a thumbnail, a session, a resume
    position and a series resume point."""
    sub = f"user_{secret}"
    headers = auth(sub)
    profile = await _created(
        await client.post(
            "/api/profiles",
            json={"name": f"Kid {secret}", "age": 8, "kids_mode": True},
            headers=headers,
        )
    )
    video = await _created(
        await client.post(
            "/api/videos",
            json={"title": f"Film {secret}", "url": f"https://example.com/{secret}.mp4"},
            headers=headers,
        )
    )
    upload = await _created(
        await client.post(
            "/api/videos/upload",
            files={
                "video": ("home.mp4", MP4, "video/mp4"),
                "thumbnail": ("t.png", PNG, "image/png"),
            },
            data={"title": f"Upload {secret}"},
            headers=headers,
        )
    )
    ids = {"profile_id": profile["id"], "video_id": video["id"]}
    session = await _created(await client.post("/api/sessions/start", json=ids, headers=headers))
    tmdb_id = f"tmdb-{secret}"
    saved = await client.post(
        "/api/progress",
        json={"clerkId": sub, "tmdbId": tmdb_id, "currentTime": 42},
        headers=headers,
    )
    assert saved.status_code == 204
    series_id = f"series-{secret}"
    episode = {"clerkId": sub, "seriesId": series_id, "tmdbId": tmdb_id, "currentTime": 7}
    saved = await client.post("/api/progress/series", json=episode, headers=headers)
    assert saved.status_code == 204
    device, waiting = await _paired_device(client, headers, profile["id"])
    asked = {"minutes": 15, "profile_id": profile["id"]}
    request = await _created(await client.post("/api/time-requests", json=asked, headers=headers))
    return {
        "request_id": request["request_id"],
        "day": session["started_at"][:10],
        "headers": headers,
        "secret": secret,
        "clerk_id": sub,
        "tmdb_id": tmdb_id,
        "series_id": series_id,
        "profile_id": profile["id"],
        "video_id": video["id"],
        "upload_id": upload["id"],
        "file_path": upload["file_path"],
        "session_id": session["session_id"],
        "session_token": session["session_token"],
        "device_id": device["device_id"],
        "device_token": device["device_token"],
        "user_code": waiting["user_code"],  # a code still waiting for this parent
    }


async def _paired_device(
    client: Client, headers: dict[str, str], profile_id: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A device paired with the profile (its token answer), and a pairing still waiting."""
    pairing = await _created(await client.post("/api/devices/pair"))
    confirm = {"user_code": pairing["user_code"], "name": "TV"}
    await _created(
        await client.post(f"/api/profiles/{profile_id}/devices", json=confirm, headers=headers)
    )
    poll = {"device_code": pairing["device_code"]}
    device = await _created(await client.post("/api/devices/token", json=poll))
    return device, await _created(await client.post("/api/devices/pair"))


def _fill(template: Any, owner: dict[str, Any], intruder: dict[str, Any]) -> Any:
    values = {**owner, "own_profile": intruder["profile_id"], "own_video": intruder["video_id"]}
    if isinstance(template, dict):
        return {k: _fill(v, owner, intruder) for k, v in template.items()}
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    if isinstance(template, str):
        return template.format(**values)
    return template


async def _snapshot(client: Client, drain: Any, owner: dict[str, Any]) -> dict[str, Any]:
    await drain()
    headers = owner["headers"]
    paths = [
        f"/api/profiles/{owner['profile_id']}",
        f"/api/videos/{owner['video_id']}",
        f"/api/videos/{owner['upload_id']}",
        f"/api/sessions/{owner['session_id']}",
        f"/api/progress/{owner['clerk_id']}/{owner['tmdb_id']}",
        f"/api/progress/series/{owner['clerk_id']}/{owner['series_id']}",
        f"/api/profiles/{owner['profile_id']}/devices",
        f"/api/time-requests/{owner['request_id']}",
        f"/api/profiles/{owner['profile_id']}/time-requests",
    ]
    state = {path: (await client.get(path, headers=headers)).json() for path in paths}
    stream = await client.get(f"/api/videos/{owner['upload_id']}/stream", headers=headers)
    state["stream"] = stream.content
    thumbnail = await client.get(f"/api/videos/{owner['upload_id']}/thumbnail", headers=headers)
    state["thumbnail"] = thumbnail.content
    return state


def test_the_matrix_names_every_route_that_takes_an_id(app: Litestar) -> None:
    with_ids = {
        (method, route.path_format)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if "{" in route.path_format
        and route.path_format.startswith("/api/")
        and method not in ("OPTIONS", "HEAD")
    }
    in_matrix = {(method, path.replace("{upload_id}", "{video_id}")) for method, path, _ in MATRIX}
    assert with_ids <= in_matrix


async def test_another_parent_reaches_nothing_of_the_owners(
    client: Client, auth: Auth, drain: Any
) -> None:
    owner = await _parent(client, auth, secrets.token_hex(5))
    intruder = await _parent(client, auth, secrets.token_hex(5))
    before = await _snapshot(client, drain, owner)
    session_token_headers = {"Authorization": f"Bearer {intruder['session_token']}"}
    device_headers = {"Authorization": f"Bearer {intruder['device_token']}"}
    for method, template, body in MATRIX:
        path = _fill(template, owner, intruder)
        attempts = [intruder["headers"]]
        if "/api/sessions/{session_id}" in template and not template.endswith("/stop"):
            # (a stop is the parent's alone: no session or device token may ask for one)
            attempts.append(session_token_headers)  # the intruder's own session's token
            attempts.append(device_headers)  # the intruder's own paired device
        if template.endswith("/stream"):
            attempts.append({})  # token in the query string instead
            path_with_token = path + "?access_token=" + intruder["headers"]["Authorization"][7:]
        for headers in attempts:
            target = path_with_token if template.endswith("/stream") and not headers else path
            payload = _fill(body, owner, intruder) if body is not None else None
            response = await client.request(method, target, json=payload, headers=headers)
            expected = 403 if template.startswith("/api/progress") else 404
            assert response.status_code == expected, (method, template, response.text)
            assert_error_shape(path, response)
            assert_no_internals(response)
            assert owner["secret"] not in response.text, (method, template)
    assert await _snapshot(client, drain, owner) == before


async def test_lists_show_only_the_callers_own_resources(client: Client, auth: Auth) -> None:
    owner = await _parent(client, auth, secrets.token_hex(5))
    intruder = await _parent(client, auth, secrets.token_hex(5))
    for path in ("/api/profiles?limit=100", "/api/videos?limit=100"):
        listing = await client.get(path, headers=intruder["headers"])
        assert listing.status_code == 200
        assert owner["secret"] not in listing.text
        assert intruder["secret"] in listing.text


async def test_the_owners_uploaded_file_is_never_served_to_others(
    client: Client, auth: Auth, media_root: Path
) -> None:
    owner = await _parent(client, auth, secrets.token_hex(5))
    intruder = await _parent(client, auth, secrets.token_hex(5))
    on_disk = media_root / owner["file_path"].removeprefix("/uploads/")
    assert on_disk.read_bytes() == MP4
    for headers in (intruder["headers"], {}):
        response = await client.get(
            f"/api/videos/{owner['upload_id']}/stream",
            headers={**headers, "Range": "bytes=0-15"},
        )
        assert response.status_code in (401, 404)
        assert MP4[:16] not in response.content


async def test_the_event_history_is_not_for_parents(client: Client, auth: Auth) -> None:
    response = await client.get("/api/events", headers=auth())
    assert response.status_code == 403
    assert response.json()["error"]["status"] == 403
