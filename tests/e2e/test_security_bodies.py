"""Hostile request bodies on every route that takes one: always a documented 4xx, never a 500.

Malformed, oversized, deeply nested, NaN/Infinity, badly encoded and NUL-carrying bodies, wrong
content types and clients that trickle their body; every answer is in its route family's error
shape and names nothing internal. Valid unicode, by contrast, round-trips exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import msgspec
import pytest
from asgi_scope import post_scope
from litestar import Litestar
from litestar.testing import AsyncTestClient
from security_checks import assert_error_shape, assert_no_internals

from adapters.settings import Settings
from api.app import create_app
from api.fast import FAST
from api.route_facts import handlers_of

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
JSON = {"Content-Type": "application/json"}

# Routes whose handler reads a JSON body, as (method, path template).
JSON_ROUTES = [
    ("POST", "/api/progress"),
    ("POST", "/api/progress/series"),
    ("POST", "/api/profiles"),
    ("PATCH", "/api/profiles/{profile_id}"),
    ("POST", "/api/videos"),
    ("PATCH", "/api/videos/{video_id}"),
    ("POST", "/api/sessions/start"),
    ("POST", "/api/sessions/start/public"),
    ("POST", "/api/sessions/{session_id}/heartbeat"),
    ("POST", "/api/devices/token"),
    ("POST", "/api/profiles/{profile_id}/devices"),
    ("POST", "/api/profiles/{profile_id}/bonus"),
    ("POST", "/api/profiles/{profile_id}/lock"),
    ("POST", "/api/time-requests"),
    ("POST", "/api/time-requests/{request_id}/approve"),
]
NO_BODY_ROUTES = [  # take no body; ignore one
    ("POST", "/api/sessions/{session_id}/end"),
    ("POST", "/api/devices/pair"),
    ("POST", "/api/sessions/{session_id}/stop"),
    ("POST", "/api/time-requests/{request_id}/deny"),
]
STREAMED_ROUTES = [("POST", "/api/videos/upload")]  # multipart, its own limits

MALFORMED = [b"{", b'{"a":}', b"nope", b'{"a": 1,}', b"{'a': 1}", b'{"a": 01}']
NON_FINITE = [
    b'{"age": NaN, "currentTime": NaN, "position": NaN}',
    b'{"age": Infinity, "currentTime": Infinity, "position": Infinity}',
    b'{"daily_limit_minutes": -Infinity, "currentTime": -Infinity, "position": -Infinity}',
    b'{"profile_id": 1e999, "currentTime": 1e999, "position": 1e999, "age": 1e999}',
]
DEEP = [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"[" * 33 + b"]" * 33]
BAD_TEXT = [
    b'{"name": "\xff\xfe", "title": "\xff"}',  # not UTF-8
    b'{"name": "\xc0\xaf\xc0\xaf", "title": "\xc0\xaf"}',  # overlong encoding of "/"
    b'{"name": "\\ud800x", "title": "\\udfff", "tmdbId": "\\ud800"}',  # lone surrogates
    b'{"name": "ab\\u0000cd", "title": "a\\u0000", "tmdbId": "a\\u0000b", "clerkId": "\\u0000"}',
    b'{"name": "ab\x00cd"}',  # a raw NUL is not even JSON
]
NOT_OBJECTS = [b"[]", b'"text"', b"12", b"true", b"[{}]"]
OVERSIZED = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
HOSTILE_JSON = MALFORMED + NON_FINITE + DEEP + BAD_TEXT + NOT_OBJECTS
HOSTILE_FOR_ANY_BODY = DEEP[:2] + BAD_TEXT[:2] + BAD_TEXT[3:4]


@pytest.fixture
async def world(client: Client, auth: Auth) -> dict[str, Any]:
    """A parent with a kids-mode profile, a video and a running session; their ids."""
    sub = "user_hostile_" + msgspec.json.encode(id(client)).decode()
    headers = auth(sub)
    profile = await client.post(
        "/api/profiles", json={"name": "Ada", "age": 7, "kids_mode": True}, headers=headers
    )
    video = await client.post(
        "/api/videos", json={"title": "Moon", "url": "https://example.com/m.mp4"}, headers=headers
    )
    ids = {"profile_id": profile.json()["id"], "video_id": video.json()["id"]}
    session = await client.post("/api/sessions/start", json=ids, headers=headers)
    assert session.status_code == 201, session.text
    # A request id nobody holds: the time-request decisions answer their 4xx all the same.
    return {
        "headers": headers,
        "session_id": session.json()["session_id"],
        "request_id": 9**9,
        **ids,
    }


def _path(template: str, world: dict[str, Any]) -> str:
    return template.format(**{k: v for k, v in world.items() if k != "headers"})


async def _post(
    client: Client, method: str, path: str, body: bytes, headers: dict[str, str]
) -> Any:
    response = await client.request(method, path, content=body, headers={**JSON, **headers})
    assert 400 <= response.status_code < 500, (path, body[:60], response.text[:200])
    assert_error_shape(path, response)
    assert_no_internals(response)
    return response


def test_every_route_with_a_body_is_covered(app: Litestar) -> None:
    """A new POST/PUT/PATCH route must be added to one of the lists above."""
    covered = set(JSON_ROUTES + NO_BODY_ROUTES + STREAMED_ROUTES)
    found = {
        (method, route.path_format)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method in ("POST", "PUT", "PATCH") and route.path_format.startswith("/api/")
    }
    # Fast routes (raw ASGI handlers) declare their methods in their endpoints (api/fast.py).
    found |= {
        (method, route.path_format)
        for route in app.routes
        for handler in handlers_of(route)
        for method in handler.opt.get(FAST, ())
        if method in ("POST", "PUT", "PATCH")
    }
    assert found == covered


@pytest.mark.parametrize(("method", "template"), JSON_ROUTES)
async def test_hostile_json_bodies_are_4xx_in_the_routes_error_shape(
    client: Client, world: dict[str, Any], method: str, template: str
) -> None:
    path = _path(template, world)
    for body in HOSTILE_JSON:
        await _post(client, method, path, body, world["headers"])


@pytest.mark.parametrize(("method", "template"), JSON_ROUTES + NO_BODY_ROUTES)
async def test_bodies_no_handler_should_see_are_refused_on_every_route(
    client: Client, world: dict[str, Any], method: str, template: str
) -> None:
    path = _path(template, world)
    for body in HOSTILE_FOR_ANY_BODY:
        response = await _post(client, method, path, body, world["headers"])
        assert response.status_code == 400
    too_large = await _post(client, method, path, OVERSIZED, world["headers"])
    assert too_large.status_code == 413


@pytest.mark.parametrize(("method", "template"), JSON_ROUTES)
async def test_non_json_content_types_are_415(
    client: Client, world: dict[str, Any], method: str, template: str
) -> None:
    path = _path(template, world)
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data", "text/xml"):
        headers = {**world["headers"], "Content-Type": content_type}
        response = await client.request(method, path, content=b'{"a": 1}', headers=headers)
        assert response.status_code == 415, (path, content_type)
        assert_error_shape(path, response)


async def test_declared_length_over_the_limit_is_413_before_the_body_is_read(
    client: Client, auth: Auth
) -> None:
    headers = {**auth(), **JSON, "Content-Length": str(10 * 1024 * 1024)}
    response = await client.post("/api/videos", content=b"{}", headers=headers)
    assert response.status_code == 413
    assert_error_shape("/api/videos", response)


async def test_nul_that_is_only_an_escaped_backslash_is_plain_text(
    client: Client, auth: Auth
) -> None:
    title = "C:\\u0000 is not a NUL"
    body = msgspec.json.encode({"title": title, "url": "https://example.com/a.mp4"})
    assert b"\\\\u0000" in body
    response = await client.post("/api/videos", content=body, headers={**auth(), **JSON})
    assert response.status_code == 201, response.text
    assert response.json()["title"] == title


@pytest.mark.parametrize(
    "name",
    [
        "Zoë 👩‍👧‍👦",  # combining-free accent and a ZWJ emoji sequence
        "\u202eevil\u202c",  # right-to-left override
        "天空の城ラピュタ",
        "e\u0301\u0301\u0301",  # stacked combining marks
    ],
)
async def test_valid_unicode_round_trips_exactly(client: Client, auth: Auth, name: str) -> None:
    headers = auth()
    created = await client.post("/api/profiles", json={"name": name, "age": 6}, headers=headers)
    assert created.status_code == 201, created.text
    fetched = await client.get(f"/api/profiles/{created.json()['id']}", headers=headers)
    assert fetched.json()["name"] == name


# --- clients that trickle their body (driven at the ASGI level, with short timeouts) ---


@pytest.fixture
def slow_app(settings: Settings) -> Litestar:
    quick = msgspec.structs.replace(
        settings, body_idle_timeout_seconds=0.3, json_body_timeout_seconds=1.0
    )
    return create_app(quick)


@pytest.fixture
async def slow_client(slow_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=slow_app) as client:
        yield client


def _call(
    client: Client, app: Litestar, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, dict[str, str], bytes]:
    """Send ``chunks`` (one every 0.1 s), then nothing for 5 s, then hang up; the response."""
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            await anyio.sleep(5)  # far past the timeouts under test; then the client gives up
            return {"type": "http.disconnect"}
        await anyio.sleep(0.1)
        return {"type": "http.request", "body": pending.pop(0), "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    client.blocking_portal.call(app, post_scope(path, headers), receive, send)
    start = sent[0]
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_json_body_that_stops_arriving_is_408_and_the_connection_closed(
    slow_app: Litestar, slow_client: Client, auth: Auth
) -> None:
    headers = {**auth(), **JSON, "Content-Length": "100"}
    status, response_headers, body = _call(
        slow_client, slow_app, "/api/videos", headers, [b'{"title": "x",']
    )
    assert status == 408
    assert response_headers["connection"] == "close"
    assert msgspec.json.decode(body)["error"]["status"] == 408


async def test_a_json_body_trickled_past_the_whole_body_deadline_is_408(
    slow_app: Litestar, slow_client: Client, auth: Auth
) -> None:
    """Each byte arrives well within the idle timeout, but the body never completes in time."""
    headers = {**auth(), **JSON, "Content-Length": "1000"}
    chunks = [b" "] * 50  # 0.1 s apart: 5 s in all, the deadline is 1 s
    status, _headers, body = _call(slow_client, slow_app, "/api/progress", headers, chunks)
    assert status == 408
    assert msgspec.json.decode(body) == {"error": "Request body was not received in time"}


async def test_an_upload_that_stops_arriving_is_408_and_leaves_no_partial_file(
    slow_app: Litestar, slow_client: Client, auth: Auth, settings: Settings
) -> None:
    boundary = "slow-boundary"
    disposition = 'form-data; name="video"; filename="v.mp4"'
    first = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
    first += b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (1100 * 1024)  # past the write buffer
    headers = {**auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _headers, body = _call(slow_client, slow_app, "/api/videos/upload", headers, [first])
    assert status == 408
    assert msgspec.json.decode(body)["error"]["message"] == "Request body was not received in time"
    assert list(settings.media_path.rglob("*.part")) == []
