"""``/api/progress`` over HTTP: every status code of seed 000, save -> drain -> read."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container
from domain.clock import FakeClock
from domain.codec import decode
from domain.events import ProgressSaved
from projections.base import stream_id_key

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def clerk() -> str:
    return f"user_{secrets.token_hex(6)}"


async def save(client: Client, auth: Auth, clerk: str, **fields: Any) -> Any:
    body = {"clerkId": clerk, "tmdbId": "12345", "currentTime": 3600, **fields}
    return await client.post("/api/progress", json=body, headers=auth(clerk))


async def test_save_is_204_and_readable_after_the_projection_catches_up(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    response = await save(client, auth, clerk)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["x-request-id"]
    await drain()
    read = await client.get(f"/api/progress/{clerk}/12345", headers=auth(clerk))
    assert read.status_code == 200
    body = read.json()
    assert set(body) == {"currentTime", "updatedAt"}
    assert body["currentTime"] == 3600
    assert ISO_MS.match(body["updatedAt"])
    assert read.headers["content-type"].startswith("application/json")


async def test_integer_tmdb_id_is_read_back_by_its_decimal_string(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    assert (await save(client, auth, clerk, tmdbId=550, currentTime=12.5)).status_code == 204
    await drain()
    read = await client.get(f"/api/progress/{clerk}/550", headers=auth(clerk))
    assert read.json()["currentTime"] == 12.5
    listed = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert [e["tmdbId"] for e in listed.json()] == ["550"]


async def test_list_is_newest_first_with_the_seed_fields_and_honours_limit(
    clocked: tuple[Client, FakeClock], auth: Auth, drain: Drain, clerk: str
) -> None:
    client, clock = clocked
    for tmdb_id, seconds in (("a", 1), ("c", 3), ("b", 2)):
        response = await save(client, auth, clerk, tmdbId=tmdb_id, currentTime=seconds)
        assert response.status_code == 204
        clock.advance(60 * seconds)
    await drain()
    listed = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert listed.status_code == 200
    body = listed.json()
    assert [(e["tmdbId"], e["currentTime"]) for e in body] == [("b", 2), ("c", 3), ("a", 1)]
    assert all(set(e) == {"tmdbId", "currentTime", "updatedAt"} for e in body)
    assert [e["updatedAt"] for e in body] == sorted((e["updatedAt"] for e in body), reverse=True)
    limited = await client.get(f"/api/progress/{clerk}?limit=2", headers=auth(clerk))
    assert [e["tmdbId"] for e in limited.json()] == ["b", "c"]


async def test_updated_at_is_the_server_time_of_the_save(
    clocked: tuple[Client, FakeClock], auth: Auth, drain: Drain, clerk: str
) -> None:
    client, clock = clocked
    at = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=678_999)
    clock.set(at)
    await save(client, auth, clerk, tmdbId="t")
    await drain()
    read = await client.get(f"/api/progress/{clerk}/t", headers=auth(clerk))
    expected = at.strftime("%Y-%m-%dT%H:%M:%S.678Z")
    assert read.json() == {"currentTime": 3600, "updatedAt": expected}


async def test_list_of_a_user_without_progress_is_empty(
    client: Client, auth: Auth, clerk: str
) -> None:
    listed = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert (listed.status_code, listed.json()) == (200, [])


async def test_unknown_title_is_404(client: Client, auth: Auth, clerk: str) -> None:
    read = await client.get(f"/api/progress/{clerk}/nothing", headers=auth(clerk))
    assert (read.status_code, read.json()) == (404, {"error": "Progress not found"})


async def test_delete_is_204_then_the_title_is_gone_and_a_second_delete_is_404(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, tmdbId="9")
    await drain()
    deleted = await client.delete(f"/api/progress/{clerk}/9", headers=auth(clerk))
    assert (deleted.status_code, deleted.content) == (204, b"")
    await drain()
    assert (await client.get(f"/api/progress/{clerk}/9", headers=auth(clerk))).status_code == 404
    assert (await client.get(f"/api/progress/{clerk}", headers=auth(clerk))).json() == []
    again = await client.delete(f"/api/progress/{clerk}/9", headers=auth(clerk))
    assert (again.status_code, again.json()) == (404, {"error": "Progress not found"})


async def test_delete_of_a_title_never_saved_is_404(client: Client, auth: Auth, clerk: str) -> None:
    response = await client.delete(f"/api/progress/{clerk}/never", headers=auth(clerk))
    assert response.status_code == 404


async def test_save_at_90_percent_of_duration_removes_the_title(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, tmdbId="movie", currentTime=600, duration=6000)
    await save(client, auth, clerk, tmdbId="other", currentTime=60, duration=6000)
    await drain()
    assert (
        await client.get(f"/api/progress/{clerk}/movie", headers=auth(clerk))
    ).status_code == 200
    finished = await save(client, auth, clerk, tmdbId="movie", currentTime=5400, duration=6000)
    assert finished.status_code == 204
    await drain()
    assert (
        await client.get(f"/api/progress/{clerk}/movie", headers=auth(clerk))
    ).status_code == 404
    listed = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert [e["tmdbId"] for e in listed.json()] == ["other"]


async def test_save_below_90_percent_keeps_the_title(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, tmdbId="movie", currentTime=5399, duration=6000)
    await drain()
    read = await client.get(f"/api/progress/{clerk}/movie", headers=auth(clerk))
    assert read.json()["currentTime"] == 5399


async def test_concurrent_saves_for_one_title_end_with_the_newest(
    client: Client, auth: Auth, drain: Drain, container: Container, clerk: str
) -> None:
    results = await asyncio.gather(
        *(save(client, auth, clerk, tmdbId="race", currentTime=s) for s in range(1, 21))
    )
    assert {r.status_code for r in results} == {204}
    saves = []  # read before draining: the projector trims what every projection has passed
    for entry_id, fields in await container.redis.xrange(container.events.stream_for(clerk)):
        event = decode(fields[b"t"].decode(), int(fields[b"v"]), fields[b"d"])
        if isinstance(event, ProgressSaved) and event.clerk_id == clerk:
            saves.append((event.occurred_at, stream_id_key(entry_id.decode()), event.current_time))
    assert len(saves) == 20
    await drain()
    newest = max(saves)[2]  # latest server time; equal times: appended last
    read = await client.get(f"/api/progress/{clerk}/race", headers=auth(clerk))
    assert read.json()["currentTime"] == newest
    listed = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert [(e["tmdbId"], e["currentTime"]) for e in listed.json()] == [("race", newest)]


# --- validation (400) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"clerkId": None}, "clerkId"),
        ({"tmdbId": None}, "tmdbId"),
        ({"tmdbId": ""}, "tmdbId"),
        ({"tmdbId": "x" * 65}, "tmdbId"),
        ({"tmdbId": True}, "tmdbId"),
        ({"tmdbId": [1]}, "tmdbId"),
        ({"currentTime": None}, "currentTime"),
        ({"currentTime": "3600"}, "currentTime"),
        ({"currentTime": -1}, "currentTime"),
        ({"currentTime": 604_801}, "currentTime"),
        ({"currentTime": False}, "currentTime"),
        ({"duration": 0}, "duration"),
        ({"duration": "long"}, "duration"),
    ],
)
async def test_invalid_field_is_400_validation_failed_naming_it(
    client: Client, auth: Auth, clerk: str, fields: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"clerkId": clerk, "tmdbId": "1", "currentTime": 10, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post("/api/progress", json=body, headers=auth(clerk))
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"
    assert list(response.json()["details"]) == [field]
    assert isinstance(response.json()["details"][field], str)


async def test_empty_object_names_every_required_field(
    client: Client, auth: Auth, clerk: str
) -> None:
    response = await client.post("/api/progress", json={}, headers=auth(clerk))
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"clerkId", "tmdbId", "currentTime"}


async def test_number_too_large_for_a_double_is_a_validation_error(
    client: Client, auth: Auth, clerk: str
) -> None:
    raw = f'{{"clerkId":"{clerk}","tmdbId":"1","currentTime":1e999}}'.encode()
    response = await client.post("/api/progress", content=raw, headers=auth(clerk))
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["currentTime"]


async def test_malformed_json_is_400_with_an_error_message(
    client: Client, auth: Auth, clerk: str
) -> None:
    headers = {**auth(clerk), "Content-Type": "application/json"}
    for raw in (b"{", b"", b"nope", b'{"clerkId": "x",}'):
        response = await client.post("/api/progress", content=raw, headers=headers)
        assert response.status_code == 400, raw
        assert response.json() == {"error": "Malformed JSON body"}, raw


async def test_json_that_is_not_an_object_is_400(client: Client, auth: Auth, clerk: str) -> None:
    for raw in (b"[]", b"null", b'"x"', b"7"):
        response = await client.post("/api/progress", content=raw, headers=auth(clerk))
        assert response.status_code == 400, raw
        assert response.json() == {"error": "Request body must be a JSON object"}, raw


async def test_bad_list_limit_is_400_validation_failed(
    client: Client, auth: Auth, clerk: str
) -> None:
    for limit in ("0", "501", "x", "-5", "1.5", ""):
        response = await client.get(f"/api/progress/{clerk}?limit={limit}", headers=auth(clerk))
        assert response.status_code == 400, limit
        assert response.json()["error"] == "Validation failed"
        assert list(response.json()["details"]) == ["limit"], limit


async def test_path_tmdb_id_over_64_characters_is_400(
    client: Client, auth: Auth, clerk: str
) -> None:
    response = await client.get(f"/api/progress/{clerk}/{'9' * 65}", headers=auth(clerk))
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["tmdbId"]


async def test_sendbeacon_text_plain_body_is_accepted(
    client: Client, auth: Auth, clerk: str
) -> None:
    raw = f'{{"clerkId":"{clerk}","tmdbId":"1","currentTime":1}}'.encode()
    headers = {**auth(clerk), "Content-Type": "text/plain;charset=UTF-8"}
    assert (await client.post("/api/progress", content=raw, headers=headers)).status_code == 204


@pytest.mark.parametrize("content", [b"clerkId=x", b""])
async def test_form_body_is_415(client: Client, auth: Auth, clerk: str, content: bytes) -> None:
    headers = {**auth(clerk), "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/api/progress", content=content, headers=headers)
    assert response.status_code == 415
    assert set(response.json()) == {"error"}


async def test_body_over_the_json_limit_is_413(client: Client, auth: Auth, clerk: str) -> None:
    raw = b'{"pad":"' + b"x" * 70_000 + b'"}'
    response = await client.post("/api/progress", content=raw, headers=auth(clerk))
    assert response.status_code == 413
    assert set(response.json()) == {"error"}


HOSTILE_BODIES = [
    b"\xff\xfe\x00",
    b'{"name": "\xff\xfe", "title": "\xff"}',
    b'{"clerkId": "\xff", "tmdbId": "1", "currentTime": 1}',
    b'{"clerkId": {"a": [[[[[]]]]]}, "tmdbId": {}, "currentTime": {}}',
    b'{"clerkId": "\\ud800", "tmdbId": 1, "currentTime": 1}',
    b'{"tmdbId": 123456789012345678901234567890123456789012345678901234567890123456789}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"currentTime": NaN}',
    b'{"currentTime": Infinity}',
]


async def test_hostile_bodies_get_a_4xx_never_a_500(client: Client, auth: Auth, clerk: str) -> None:
    for raw in HOSTILE_BODIES:
        response = await client.post("/api/progress", content=raw, headers=auth(clerk))
        assert 400 <= response.status_code < 500, raw[:40]
        assert set(response.json()) <= {"error", "details"}, raw[:40]


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE", "PATCH"])
async def test_wrong_method_is_405_in_the_progress_shape(
    client: Client, auth: Auth, method: str
) -> None:
    response = await client.request(method, "/api/progress", json={}, headers=auth())
    assert response.status_code == 405
    assert set(response.json()) == {"error"}
    assert response.headers["allow"] == "POST"


# --- authentication (401) and ownership (403) --------------------------------------------


def routes(clerk: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    body = {"clerkId": clerk, "tmdbId": "1", "currentTime": 1}
    return [
        ("POST", "/api/progress", body),
        ("GET", f"/api/progress/{clerk}/1", None),
        ("GET", f"/api/progress/{clerk}", None),
        ("DELETE", f"/api/progress/{clerk}/1", None),
    ]


async def call(
    client: Client, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> Any:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
)
async def test_every_route_is_401_without_a_valid_bearer_token(
    client: Client, clerk: str, headers: dict[str, str]
) -> None:
    for method, path, body in routes(clerk):
        response = await call(client, method, path, body, headers)
        assert response.status_code == 401, (method, path)
        assert set(response.json()) == {"error"}
        assert response.headers["www-authenticate"] == "Bearer"


async def test_reads_without_authorization_are_401(client: Client, clerk: str) -> None:
    for path in (f"/api/progress/{clerk}/1", f"/api/progress/{clerk}"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (
            401,
            {"error": "Authentication required"},
        )


async def test_requests_without_a_token_are_401_not_a_csrf_failure(
    client: Client, clerk: str
) -> None:
    # CONTRACT §3, §9: no credential is 401 before any CSRF or body check.
    for method, path, body in routes(clerk):
        response = await call(client, method, path, body, {})
        assert response.status_code == 401, (method, path)
        assert response.json() == {"error": "Authentication required"}


async def test_expired_token_is_401(
    client: Client, make_token: Callable[..., str], clerk: str
) -> None:
    headers = {"Authorization": f"Bearer {make_token(clerk, ttl=-60)}"}
    for method, path, body in routes(clerk):
        response = await call(client, method, path, body, headers)
        assert (response.status_code, response.json()) == (401, {"error": "Token expired"})


async def test_every_route_is_403_for_another_users_clerk_id(
    client: Client, auth: Auth, clerk: str
) -> None:
    intruder = auth()
    for method, path, body in routes(clerk):
        response = await call(client, method, path, body, intruder)
        assert response.status_code == 403, (method, path)
        assert set(response.json()) == {"error"}


async def test_second_user_can_neither_read_write_list_nor_delete_the_first_users_progress(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, tmdbId="42", currentTime=100)
    await drain()
    other = f"user_{secrets.token_hex(6)}"
    as_other = auth(other)
    write = await client.post(
        "/api/progress",
        json={"clerkId": clerk, "tmdbId": "42", "currentTime": 1},
        headers=as_other,
    )
    read = await client.get(f"/api/progress/{clerk}/42", headers=as_other)
    listed = await client.get(f"/api/progress/{clerk}", headers=as_other)
    removed = await client.delete(f"/api/progress/{clerk}/42", headers=as_other)
    assert [r.status_code for r in (write, read, listed, removed)] == [403, 403, 403, 403]
    await drain()
    # The first user's progress is untouched, and the second user sees only their own.
    mine = await client.get(f"/api/progress/{clerk}/42", headers=auth(clerk))
    assert mine.json()["currentTime"] == 100
    theirs = await client.get(f"/api/progress/{other}", headers=as_other)
    assert theirs.json() == []
    assert (await client.get(f"/api/progress/{other}/42", headers=as_other)).status_code == 404


async def test_two_users_cannot_share_a_resume_key_through_a_colon(
    client: Client, auth: Auth, drain: Drain
) -> None:
    """``kid:y`` + ``z`` and ``kid`` + ``y:z`` would both be ``resume:kid:y:z`` (issue 15, M3)."""
    kid = f"kid_{secrets.token_hex(4)}"
    assert (await save(client, auth, kid, tmdbId="y:z", currentTime=5)).status_code == 204
    other = await save(client, auth, f"{kid}:y", tmdbId="z", currentTime=100)
    assert other.status_code == 400
    details = other.json()["details"]
    assert other.json() == {"error": "Validation failed", "details": details}
    assert list(details) == ["clerkId"] and "':'" in details["clerkId"]
    for request in (client.get, client.delete):
        refused = await request(f"/api/progress/{kid}:y/z", headers=auth(f"{kid}:y"))
        assert refused.status_code == 400 and list(refused.json()["details"]) == ["clerkId"]
    await drain()
    kept = await client.get(f"/api/progress/{kid}/y:z", headers=auth(kid))
    assert kept.json()["currentTime"] == 5
