"""``GET /api/events``: the analysts' feed over HTTP (CONTRACT §10)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import history_samples
import pytest
from history_samples import (
    T0,
    archive,
    insert_rows,
    mixed_events,
    progress_saved_v1_row,
)
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.container import Container

Auth = Callable[..., dict[str, str]]
Client = AsyncTestClient[Litestar]


# This module's own database and an empty archive around each test (history_samples).
history_settings = history_samples.history_settings
container = history_samples.container
app = history_samples.app
empty_archive = history_samples.empty_archive


async def _feed(client: Client, auth: Auth, query: str = "", role: str = "analyst") -> Any:
    response = await client.get(f"/api/events{query}", headers=auth(role=role))
    assert response.status_code == 200, response.text
    return response.json()


async def _follow(client: Client, auth: Auth, query: str, after: int = 0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        page = await _feed(client, auth, f"?after={after}&{query}")
        seen.extend(page["events"])
        if page["next"] is None:
            return seen
        after = page["next"]


async def test_parent_is_refused_with_403_envelope(client: Client, auth: Auth) -> None:
    response = await client.get("/api/events", headers=auth(role="parent"))
    assert response.status_code == 403
    error = response.json()["error"]
    assert set(error) == {"message", "status", "timestamp", "requestId"}
    assert error["status"] == 403


async def test_missing_token_is_401(client: Client) -> None:
    response = await client.get("/api/events")
    assert response.status_code == 401


@pytest.mark.parametrize("role", ["analyst", "admin"])
async def test_events_are_served_in_archive_order_with_their_fields(
    client: Client, auth: Auth, container: Container, role: str
) -> None:
    sample = mixed_events(6)
    await archive(container.engine, sample, first=11)
    page = await _feed(client, auth, role=role)
    assert [e["position"] for e in page["events"]] == list(range(11, 17))
    assert page["next"] is None
    first = page["events"][0]
    assert set(first) >= {"position", "id", "type", "version", "occurred_at", "data"}
    assert first["type"] == "session.started" and first["version"] == 1
    assert first["id"] == "0-1753689600011-0"
    assert first["occurred_at"] == "2025-07-28T08:00:00.123Z"
    assert first["data"]["profile_id"] == 1 and first["data"]["session_id"] == 1000
    heartbeat = page["events"][1]
    assert heartbeat["data"]["shares"] == [["2025-07-28", 60.0]]


async def test_following_next_reads_every_event_exactly_once(
    client: Client, auth: Auth, container: Container
) -> None:
    positions = await archive(container.engine, mixed_events(25))
    seen = await _follow(client, auth, "limit=4")
    assert [e["position"] for e in seen] == positions


async def test_next_is_the_last_position_of_a_full_page_and_null_on_a_short_one(
    client: Client, auth: Auth, container: Container
) -> None:
    await archive(container.engine, mixed_events(5))
    full = await _feed(client, auth, "?limit=3")
    assert full["next"] == 3
    short = await _feed(client, auth, "?after=3&limit=3")
    assert [e["position"] for e in short["events"]] == [4, 5]
    assert short["next"] is None


async def test_polling_from_the_last_position_sees_new_events(
    client: Client, auth: Auth, container: Container
) -> None:
    await archive(container.engine, mixed_events(3))
    caught_up = await _feed(client, auth, "?after=0")
    last = caught_up["events"][-1]["position"]
    assert await _feed(client, auth, f"?after={last}") == {"events": [], "next": None}
    await archive(container.engine, mixed_events(2, start=T0 + timedelta(days=1)), first=last + 1)
    fresh = await _feed(client, auth, f"?after={last}")
    assert [e["position"] for e in fresh["events"]] == [last + 1, last + 2]


async def test_type_filter_accepts_one_or_several_types(
    client: Client, auth: Auth, container: Container
) -> None:
    await archive(container.engine, mixed_events(30))
    ended = await _follow(client, auth, "type=session.ended&limit=2")
    assert ended and {e["type"] for e in ended} == {"session.ended"}
    both = await _follow(client, auth, "type=progress.saved&type=progress.deleted")
    assert {e["type"] for e in both} == {"progress.saved", "progress.deleted"}
    assert [e["position"] for e in both] == sorted(e["position"] for e in both)


async def test_since_is_inclusive_and_until_exclusive(
    client: Client, auth: Auth, container: Container
) -> None:
    await archive(container.engine, mixed_events(12))
    all_events = await _follow(client, auth, "")
    since = all_events[4]["occurred_at"]
    until = all_events[8]["occurred_at"]
    window = await _follow(client, auth, f"since={since}&until={until}")
    instants = [e["occurred_at"] for e in window]
    assert instants and min(instants) == since and max(instants) < until
    expected = [e["position"] for e in all_events if since <= e["occurred_at"] < until]
    assert [e["position"] for e in window] == expected


async def test_old_progress_saved_is_served_upcast_to_the_current_version(
    client: Client, auth: Auth, container: Container
) -> None:
    async with container.engine.begin() as conn:
        await insert_rows(conn, [progress_saved_v1_row(1, T0)])
    (event,) = (await _feed(client, auth))["events"]
    assert event["version"] == 2 and event["stored_version"] == 1
    assert event["data"]["duration"] is None and event["data"]["finished"] is False
    assert event["data"]["current_time"] == 12.0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
        ("?after=-1", "after"),
        ("?after=1.5", "after"),
        ("?type=session.paused", "type"),
        ("?since=yesterday", "since"),
        ("?until=2025-13-01", "until"),
        ("?since=2025-07-02&until=2025-07-01", "until"),
    ],
)
async def test_bad_query_parameters_are_400_naming_the_parameter(
    client: Client, auth: Auth, query: str, field: str
) -> None:
    response = await client.get(f"/api/events{query}", headers=auth(role="analyst"))
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["type"] == "field" and error["path"] == field and error["location"] == "query"
    assert error["msg"]


async def test_limit_of_1000_is_accepted(client: Client, auth: Auth) -> None:
    assert await _feed(client, auth, "?limit=1000") == {"events": [], "next": None}
