"""The feed end to end: events the API appends reach ``GET /api/events`` once projected.

Runs on the shared test stores (the events are real, so every projection stays consistent with
the archive) and only looks at what it appended, from the archive's head at its start.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import parent_setup, played_session

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]


async def _follow(
    client: Client, headers: dict[str, str], after: int, query: str = ""
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        response = await client.get(f"/api/events?after={after}&limit=3{query}", headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(page["events"])
        if page["next"] is None:
            return seen
        after = page["next"]


async def test_events_appended_through_the_api_reach_the_feed_once_in_order(
    client: Client, auth: Auth, drain: Drain
) -> None:
    analyst = auth(role="analyst")
    await drain()
    before = await _follow(client, analyst, 0)
    head = before[-1]["position"] if before else 0
    parent = f"user_{secrets.token_hex(5)}"
    headers = auth(parent)

    for seconds in (10, 20, 30):
        body = {"clerkId": parent, "tmdbId": 603, "currentTime": seconds}
        assert (await client.post("/api/progress", json=body, headers=headers)).status_code == 204
    await drain()
    deleted = await client.delete(f"/api/progress/{parent}/603", headers=headers)
    assert deleted.status_code == 204
    profile, videos = await parent_setup(client, headers)
    session_id = (await played_session(client, headers, profile["id"], videos[0]))["session_id"]
    await drain()

    mine = [e for e in await _follow(client, analyst, head) if e["data"]["actor"] == parent]
    positions = [e["position"] for e in mine]
    assert positions == sorted(set(positions))
    progress = [e for e in mine if e["type"].startswith("progress.")]
    assert [e["type"] for e in progress] == ["progress.saved"] * 3 + ["progress.deleted"]
    assert [e["data"].get("current_time") for e in progress[:3]] == [10, 20, 30]
    assert all(e["version"] == 2 for e in progress[:3])
    sessions = await _follow(client, analyst, head, "&type=session.started&type=session.ended")
    sessions = [e for e in sessions if e["data"].get("profile_id") == profile["id"]]
    assert [e["type"] for e in sessions] == ["session.started", "session.ended"]
    assert {e["data"]["session_id"] for e in sessions} == {session_id}
    # the profile's creation records its policy (profile.policy_set) too
    assert sorted(e["type"] for e in mine if not e["type"].startswith("progress.")) == [
        "profile.policy_set",
        "session.ended",
        "session.started",
    ]
    assert len({e["id"] for e in mine}) == len(mine) == 7
