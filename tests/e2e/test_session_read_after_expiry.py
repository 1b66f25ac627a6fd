"""``GET /api/sessions/:id`` once the session's Redis state has expired (CONTRACT §7).

The state key (``medio:session:{id}``) lives 30 days after a session's last command; after
that the sessions projection answers, in the same shape and to the parent only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import parent_setup, played_session

from adapters.container import Container
from adapters.session_keys import SEQUENCE_KEY, session_key
from domain.events import SessionStarted
from services import sessions

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Drain = Callable[[], Awaitable[int]]


async def _played_session(client: Client, parent: dict[str, str]) -> dict[str, Any]:
    """A session started with a 45-minute limit, one heartbeat at position 12.5, then ended."""
    profile, videos = await parent_setup(client, parent, daily_limit_minutes=45)
    started = await played_session(client, parent, profile["id"], videos[1], position=12.5)
    return {**started, "profile": profile}


async def _expire(container: Container, drain: Drain, session_id: int) -> None:
    """Project everything, then drop the session's working state as its TTL would."""
    await drain()
    shard = await sessions.session_shard(container, session_id)
    assert shard is not None
    assert await container.redis.delete(session_key(session_id, shard)) == 1


async def test_parent_reads_the_same_answer_from_the_projection_after_expiry(
    client: Client, auth: Auth, container: Container, drain: Drain
) -> None:
    parent = auth()
    session = await _played_session(client, parent)
    sid = session["session_id"]
    live = await client.get(f"/api/sessions/{sid}", headers=parent)
    assert live.status_code == 200
    # The profile's limit changes later; the session keeps the limit it started with.
    patched = await client.patch(
        f"/api/profiles/{session['profile']['id']}",
        json={"daily_limit_minutes": 30},
        headers=parent,
    )
    assert patched.status_code == 200
    await _expire(container, drain, sid)
    expired = await client.get(f"/api/sessions/{sid}", headers=parent)
    assert expired.status_code == 200, expired.text
    assert expired.json() == live.json()
    assert (expired.json()["status"], expired.json()["position"]) == ("ended", 12.5)
    assert expired.json()["daily_limit_minutes"] == 45


async def test_another_parent_gets_404_after_expiry(
    client: Client, auth: Auth, container: Container, drain: Drain
) -> None:
    sid = (await _played_session(client, auth()))["session_id"]
    await _expire(container, drain, sid)
    response = await client.get(f"/api/sessions/{sid}", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"


@pytest.mark.parametrize("session_id", [999_999_999_999, 2**64 + 1])
async def test_unknown_session_is_404_from_both_stores(
    client: Client, auth: Auth, session_id: int
) -> None:
    response = await client.get(f"/api/sessions/{session_id}", headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"


async def test_session_token_reads_only_while_the_state_lives(
    client: Client, auth: Auth, container: Container, drain: Drain
) -> None:
    session = await _played_session(client, auth())
    sid, token = session["session_id"], session["session_token"]
    device = {"X-Session-Token": token}
    assert (await client.get(f"/api/sessions/{sid}", headers=device)).status_code == 200
    await _expire(container, drain, sid)
    assert (await client.get(f"/api/sessions/{sid}", headers=device)).status_code == 404


async def test_a_session_recorded_before_the_limit_field_shows_the_profiles_limit(
    client: Client, auth: Auth, container: Container, drain: Drain
) -> None:
    parent = auth()
    profile, videos = await parent_setup(client, parent, daily_limit_minutes=45)
    session_id = int(await container.redis.incr(SEQUENCE_KEY))  # an id no start will reuse
    now = container.clock.now()
    old_event = SessionStarted(  # as appended before session.started had daily_limit_minutes
        occurred_at=now,
        actor="parent",
        session_id=session_id,
        profile_id=profile["id"],
        video_id=videos[0],
        user_id=profile["user_id"],
        timezone="UTC",
        local_date=now.date().isoformat(),
    )
    await container.events.append(str(profile["id"]), old_event)
    await drain()  # projected; it never had working state in Redis
    response = await client.get(f"/api/sessions/{session_id}", headers=parent)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["daily_limit_minutes"]) == ("active", 45)
