"""``/api/progress/series`` over HTTP (CONTRACT §4a): save -> drain -> read, every status."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import forget_rate_counts

from adapters.container import Container
from adapters.settings import load_settings
from api.app import create_app
from api.idempotency import MSG_REUSED
from domain.clock import FakeClock
from domain.codec import decode
from domain.events import SeriesProgressSaved
from projections.series_resume import series_key

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SERIES = "/api/progress/series"


@pytest.fixture
def clerk() -> str:
    return f"user_{secrets.token_hex(6)}"


async def save(client: Client, auth: Auth, clerk: str, **fields: Any) -> Any:
    body = {"clerkId": clerk, "seriesId": "1399", "tmdbId": "63056", "currentTime": 600, **fields}
    return await client.post(SERIES, json=body, headers=auth(clerk))


@pytest.fixture
async def watching(client: Client, auth: Auth, drain: Drain, clerk: str) -> str:
    """A new user with episode 63056 of series 1399 saved and projected."""
    assert (await save(client, auth, clerk)).status_code == 204
    await drain()
    return clerk


async def test_save_is_204_and_the_series_reads_back_its_current_episode(
    client: Client, auth: Auth, drain: Drain, container: Container, clerk: str
) -> None:
    response = await save(client, auth, clerk, seriesId=1399, tmdbId=63056, currentTime=61.5)
    assert (response.status_code, response.content) == (204, b"")
    await drain()
    read = await client.get(f"{SERIES}/{clerk}/1399", headers=auth(clerk))
    assert read.status_code == 200
    body = read.json()
    assert set(body) == {"currentTime", "seriesId", "tmdbId", "updatedAt"}
    assert (body["currentTime"], body["seriesId"], body["tmdbId"]) == (61.5, "1399", "63056")
    assert ISO_MS.match(body["updatedAt"])
    episode = await client.get(f"{SERIES}/{clerk}/1399/63056", headers=auth(clerk))
    assert (episode.status_code, episode.json()) == (200, body)
    stored = await container.redis.get(series_key(clerk, "1399", "63056"))
    assert stored is not None and b'"seriesId":"1399"' in stored


async def test_saving_another_episode_replaces_the_series_current_one(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, tmdbId="ep1", currentTime=100)
    await save(client, auth, clerk, tmdbId="ep2", currentTime=5)
    await drain()
    read = await client.get(f"{SERIES}/{clerk}/1399", headers=auth(clerk))
    assert (read.json()["tmdbId"], read.json()["currentTime"]) == ("ep2", 5)
    old = await client.get(f"{SERIES}/{clerk}/1399/ep1", headers=auth(clerk))
    assert (old.status_code, old.json()) == (404, {"error": "Series progress not found"})
    listed = await client.get(f"{SERIES}/{clerk}", headers=auth(clerk))
    assert [(e["seriesId"], e["tmdbId"]) for e in listed.json()] == [("1399", "ep2")]


async def test_list_is_one_entry_per_series_newest_first_and_honours_limit(
    clocked: tuple[Client, FakeClock], auth: Auth, drain: Drain, clerk: str
) -> None:
    client, clock = clocked
    for series_id, tmdb_id in (("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1")):
        response = await save(client, auth, clerk, seriesId=series_id, tmdbId=tmdb_id)
        assert response.status_code == 204
        clock.advance(60)
    await drain()
    listed = await client.get(f"{SERIES}/{clerk}", headers=auth(clerk))
    assert listed.status_code == 200
    body = listed.json()
    assert [(e["seriesId"], e["tmdbId"]) for e in body] == [("c", "c1"), ("a", "a2"), ("b", "b1")]
    assert all(set(e) == {"seriesId", "tmdbId", "currentTime", "updatedAt"} for e in body)
    limited = await client.get(f"{SERIES}/{clerk}?limit=2", headers=auth(clerk))
    assert [e["seriesId"] for e in limited.json()] == ["c", "a"]
    bad = await client.get(f"{SERIES}/{clerk}?limit=0", headers=auth(clerk))
    assert (bad.status_code, list(bad.json()["details"])) == (400, ["limit"])


async def test_literal_series_segment_is_never_read_as_a_clerk_id(
    client: Client, auth: Auth, watching: str
) -> None:
    listed = await client.get(f"{SERIES}/{watching}", headers=auth(watching))
    assert listed.status_code == 200 and [e["seriesId"] for e in listed.json()] == ["1399"]
    # A user whose id is "series" still cannot have "/api/progress/series/x" read as a title.
    as_series = await client.get(f"{SERIES}/{watching}", headers=auth("series"))
    assert as_series.status_code == 403


async def test_series_and_titles_are_separate_lists(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, seriesId="s", tmdbId="42")
    title = {"clerkId": clerk, "tmdbId": "42", "currentTime": 9}
    assert (await client.post("/api/progress", json=title, headers=auth(clerk))).status_code == 204
    await drain()
    titles = await client.get(f"/api/progress/{clerk}", headers=auth(clerk))
    assert [(e["tmdbId"], e["currentTime"]) for e in titles.json()] == [("42", 9)]
    series = await client.get(f"{SERIES}/{clerk}", headers=auth(clerk))
    assert [(e["tmdbId"], e["currentTime"]) for e in series.json()] == [("42", 600)]
    gone = await client.delete(f"/api/progress/{clerk}/42", headers=auth(clerk))
    assert gone.status_code == 204
    await drain()
    assert (await client.get(f"{SERIES}/{clerk}/s", headers=auth(clerk))).status_code == 200


async def test_unknown_series_and_episode_are_404_with_their_messages(
    client: Client, auth: Auth, clerk: str
) -> None:
    series = await client.get(f"{SERIES}/{clerk}/none", headers=auth(clerk))
    assert (series.status_code, series.json()) == (404, {"error": "No series progress found"})
    episode = await client.get(f"{SERIES}/{clerk}/none/1", headers=auth(clerk))
    assert (episode.status_code, episode.json()) == (404, {"error": "Series progress not found"})
    listed = await client.get(f"{SERIES}/{clerk}", headers=auth(clerk))
    assert (listed.status_code, listed.json()) == (200, [])


async def test_delete_is_204_then_the_series_is_gone_and_a_second_delete_is_404(
    client: Client, auth: Auth, drain: Drain, watching: str
) -> None:
    deleted = await client.delete(f"{SERIES}/{watching}/1399", headers=auth(watching))
    assert (deleted.status_code, deleted.content) == (204, b"")
    await drain()
    assert (
        await client.get(f"{SERIES}/{watching}/1399", headers=auth(watching))
    ).status_code == 404
    assert (
        await client.get(f"{SERIES}/{watching}/1399/63056", headers=auth(watching))
    ).status_code == 404
    assert (await client.get(f"{SERIES}/{watching}", headers=auth(watching))).json() == []
    again = await client.delete(f"{SERIES}/{watching}/1399", headers=auth(watching))
    assert (again.status_code, again.json()) == (404, {"error": "No series progress found"})


async def test_save_at_90_percent_of_duration_removes_the_series(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, seriesId="done", currentTime=100, duration=1000)
    await save(client, auth, clerk, seriesId="other", currentTime=100, duration=1000)
    await drain()
    finished = await save(client, auth, clerk, seriesId="done", currentTime=900, duration=1000)
    assert finished.status_code == 204
    await drain()
    assert (await client.get(f"{SERIES}/{clerk}/done", headers=auth(clerk))).status_code == 404
    listed = await client.get(f"{SERIES}/{clerk}", headers=auth(clerk))
    assert [e["seriesId"] for e in listed.json()] == ["other"]


# --- validation (400) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seriesId": None}, "seriesId"),
        ({"seriesId": ""}, "seriesId"),
        ({"seriesId": "a/b"}, "seriesId"),
        ({"seriesId": "x" * 65}, "seriesId"),
        ({"seriesId": True}, "seriesId"),
        ({"seriesId": -1}, "seriesId"),
        ({"tmdbId": None}, "tmdbId"),
        ({"currentTime": -1}, "currentTime"),
        ({"duration": 0}, "duration"),
        ({"clerkId": None}, "clerkId"),
    ],
)
async def test_invalid_field_is_400_validation_failed_naming_it(
    client: Client, auth: Auth, clerk: str, fields: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        "clerkId": clerk,
        "seriesId": "s",
        "tmdbId": "1",
        "currentTime": 10,
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post(SERIES, json=body, headers=auth(clerk))
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"
    assert list(response.json()["details"]) == [field]


async def test_empty_object_names_every_required_field(
    client: Client, auth: Auth, clerk: str
) -> None:
    response = await client.post(SERIES, json={}, headers=auth(clerk))
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"clerkId", "seriesId", "tmdbId", "currentTime"}


async def test_malformed_json_is_400_exactly_as_for_titles(
    client: Client, auth: Auth, clerk: str
) -> None:
    headers = {**auth(clerk), "Content-Type": "application/json"}
    for raw in (b"{", b"", b"nope"):
        response = await client.post(SERIES, content=raw, headers=headers)
        assert (response.status_code, response.json()) == (400, {"error": "Malformed JSON body"})
    for raw in (b"[]", b"7"):
        response = await client.post(SERIES, content=raw, headers=headers)
        assert response.json() == {"error": "Request body must be a JSON object"}


async def test_form_body_is_415(client: Client, auth: Auth, clerk: str) -> None:
    headers = {**auth(clerk), "Content-Type": "application/x-www-form-urlencoded"}
    for content in (b"clerkId=x", b""):
        response = await client.post(SERIES, content=content, headers=headers)
        assert response.status_code == 415 and set(response.json()) == {"error"}


async def test_path_ids_are_checked_like_body_ids(client: Client, auth: Auth, clerk: str) -> None:
    long = "9" * 65
    series = await client.get(f"{SERIES}/{clerk}/{long}", headers=auth(clerk))
    assert (series.status_code, list(series.json()["details"])) == (400, ["seriesId"])
    both = await client.get(f"{SERIES}/{clerk}/{long}/{long}", headers=auth(clerk))
    assert set(both.json()["details"]) == {"seriesId", "tmdbId"}
    removed = await client.delete(f"{SERIES}/{clerk}/{long}", headers=auth(clerk))
    assert removed.status_code == 400


# --- authentication (401), ownership (403), rate-limit policy -------------------------------


def routes(clerk: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    body = {"clerkId": clerk, "seriesId": "s", "tmdbId": "1", "currentTime": 1}
    return [
        ("POST", SERIES, body),
        ("GET", f"{SERIES}/{clerk}", None),
        ("GET", f"{SERIES}/{clerk}/s", None),
        ("GET", f"{SERIES}/{clerk}/s/1", None),
        ("DELETE", f"{SERIES}/{clerk}/s", None),
    ]


async def test_every_route_is_401_with_a_bad_token_in_the_progress_shape(
    client: Client, clerk: str
) -> None:
    for method, path, body in routes(clerk):
        response = await client.request(
            method, path, json=body, headers={"Authorization": "Bearer not-a-jwt"}
        )
        assert response.status_code == 401, (method, path)
        assert set(response.json()) == {"error"}


async def test_requests_without_a_token_are_401_not_a_csrf_failure(
    client: Client, clerk: str
) -> None:
    for method, path, body in routes(clerk):
        response = await client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"error": "Authentication required"}


async def test_every_route_is_403_for_another_users_clerk_id(
    client: Client, auth: Auth, drain: Drain, clerk: str
) -> None:
    await save(client, auth, clerk, seriesId="s", tmdbId="1")
    await drain()
    intruder = auth()
    for method, path, body in routes(clerk):
        response = await client.request(method, path, json=body, headers=intruder)
        assert response.status_code == 403, (method, path)
        assert set(response.json()) == {"error"}
    await drain()
    mine = await client.get(f"{SERIES}/{clerk}/s", headers=auth(clerk))
    assert mine.json()["currentTime"] == 600


@pytest.fixture
async def limited(fresh_rate_counts: None) -> AsyncIterator[Client]:
    """Rate limiting on, each policy with its own small limit (``X-RateLimit-Limit`` names it)."""
    settings = load_settings(
        env_file=None,
        rate_limit_enabled=True,
        rate_limit_general=f"7/{WINDOW}",
        rate_limit_telemetry=f"{TELEMETRY}/{WINDOW}",
    )
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


TELEMETRY = 3
WINDOW = 86_400  # fixed windows: a day-long one is not crossed while the test runs


async def test_every_route_counts_against_the_telemetry_policy(
    limited: Client, auth: Auth, container: Container, clerk: str
) -> None:
    headers = auth(clerk)
    for method, path, body in routes(clerk):
        responses = [
            await limited.request(method, path, json=body, headers=headers)
            for _ in range(TELEMETRY + 1)
        ]
        assert {r.headers["x-ratelimit-limit"] for r in responses} == {str(TELEMETRY)}, path
        assert responses[-1].status_code == 429, (method, path)
        await forget_rate_counts(container.redis)


async def test_openapi_document_describes_the_series_routes(client: Client) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    save = paths[SERIES]["post"]
    body = save["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"clerkId", "seriesId", "tmdbId", "currentTime"}
    assert save["responses"]["400"]["content"]["application/json"]["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/ProgressError"},
        {"$ref": "#/components/schemas/ProgressValidationError"},
    ]
    one = paths[SERIES + "/{clerk_id}/{series_id}"]
    assert {"get", "delete"} <= set(one)
    assert {"403", "404"} <= set(one["get"]["responses"])
    assert {"200", "403"} <= set(paths[SERIES + "/{clerk_id}"]["get"]["responses"])
    assert "200" in paths[SERIES + "/{clerk_id}/{series_id}/{tmdb_id}"]["get"]["responses"]


# --- Idempotency-Key (CONTRACT §12) ---------------------------------------------------------


async def _series_saves(container: Container, clerk: str) -> int:
    """``series_progress.saved`` events of ``clerk`` still in the log (read before a drain)."""
    count = 0
    for _id, fields in await container.redis.xrange(container.events.stream_for(clerk)):
        if fields[b"t"] == b"series_progress.saved":
            event = decode("series_progress.saved", int(fields[b"v"]), fields[b"d"])
            count += isinstance(event, SeriesProgressSaved) and event.clerk_id == clerk
    return count


async def test_retried_save_with_the_same_key_appends_one_event_and_replays_its_answer(
    client: Client, auth: Auth, container: Container, clerk: str
) -> None:
    keyed = {**auth(clerk), "Idempotency-Key": f"retry-{secrets.token_hex(8)}"}
    body = {"clerkId": clerk, "seriesId": "1399", "tmdbId": "63056", "currentTime": 42.5}
    first = await client.post(SERIES, json=body, headers=keyed)
    again = await client.post(SERIES, json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (204, 204)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await _series_saves(container, clerk) == 1
    other = await client.post(SERIES, json={**body, "currentTime": 50}, headers=keyed)
    assert (other.status_code, other.json()) == (422, {"error": MSG_REUSED})
    assert await _series_saves(container, clerk) == 1
