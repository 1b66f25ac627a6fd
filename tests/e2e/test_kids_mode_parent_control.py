"""Anonymous kids mode (M6): the caller learns no names; a parent's action ends its sessions."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from session_samples import Auth, Client, Drain, csrf_headers, daily_limit_refusal, parent_setup

from adapters.container import Container
from adapters.tables import watch_sessions
from domain.clock import FakeClock
from projections.replay import verify


@pytest.fixture
def client(api_on_clock: Client) -> Client:
    return api_on_clock


async def _public_start(client: Client, profile_id: int, video_id: int) -> Any:
    body = {"profile_id": profile_id, "video_id": video_id}
    return await client.post(
        "/api/sessions/start/public", json=body, headers=await csrf_headers(client)
    )


async def _both_sessions(client: Client, parent: dict[str, str]) -> tuple[Any, Any, Any]:
    """A kids-mode profile watching on a tablet (no token) and on the parent's own player:
    the profile, the tablet's start response and the parent's session."""
    profile, videos = await parent_setup(client, parent, kids_mode=True)
    kids = await _public_start(client, profile["id"], videos[0])
    body = {"profile_id": profile["id"], "video_id": videos[1]}
    parents = (await client.post("/api/sessions/start", json=body, headers=parent)).json()
    return profile, kids, parents


def _bearer(started: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {started.json()['session_token']}"}


async def test_an_anonymous_start_at_the_limit_is_refused_without_the_childs_name(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain
) -> None:
    parent = auth()
    profile, videos = await parent_setup(
        client, parent, name="Sarah", daily_limit_minutes=1, kids_mode=True
    )
    started = await _public_start(client, profile["id"], videos[0])
    clock.advance(60)
    beat = await client.post(
        f"/api/sessions/{started.json()['session_id']}/heartbeat", headers=_bearer(started)
    )
    assert beat.json()["status"] == "limit_reached"
    await drain()

    refused = await _public_start(client, profile["id"], videos[1])
    assert (refused.status_code, refused.json()) == daily_limit_refusal(1, 1)
    # the parent, who knows the name, still gets the seed's whole body
    body = {"profile_id": profile["id"], "video_id": videos[1]}
    own = await client.post("/api/sessions/start", json=body, headers=parent)
    assert own.status_code == 403 and own.json()["profile_name"] == "Sarah"


async def test_turning_kids_mode_off_ends_its_kids_mode_sessions_only(
    client: Client, auth: Auth, clock: FakeClock, drain: Drain, container: Container
) -> None:
    parent = auth()
    profile, kids, parents = await _both_sessions(client, parent)
    clock.advance(30)

    off = await client.patch(
        f"/api/profiles/{profile['id']}", json={"kids_mode": False}, headers=parent
    )
    assert off.status_code == 200
    kids_id = kids.json()["session_id"]
    clock.advance(30)
    late = await client.post(f"/api/sessions/{kids_id}/heartbeat", headers=_bearer(kids))
    assert late.status_code == 409
    read = (await client.get(f"/api/sessions/{kids_id}", headers=parent)).json()
    assert (read["status"], read["end_reason"], read["watched_seconds"]) == ("ended", "parent", 30)
    beat = await client.post(f"/api/sessions/{parents['session_id']}/heartbeat", headers=parent)
    assert beat.status_code == 200 and beat.json()["status"] == "active"

    await drain()
    async with container.engine.connect() as conn:
        reason = (
            await conn.execute(
                sa.select(watch_sessions.c.end_reason).where(watch_sessions.c.session_id == kids_id)
            )
        ).scalar()
    assert reason == "parent"
    report = await verify(container, ["sessions", "stats", "daily_limit"])
    assert report.differences == {}


async def test_deleting_a_profile_ends_and_erases_its_running_sessions(
    client: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, kids, parents = await _both_sessions(client, parent)
    clock.advance(20)

    deleted = await client.delete(f"/api/profiles/{profile['id']}", headers=parent)
    assert deleted.status_code == 204
    for session_id, headers in (
        (kids.json()["session_id"], _bearer(kids)),
        (parents["session_id"], parent),
    ):
        late = await client.post(f"/api/sessions/{session_id}/heartbeat", headers=headers)
        assert late.status_code in (401, 404)  # erased (CONTRACT §15): no session, no token
        read = await client.get(f"/api/sessions/{session_id}", headers=headers)
        assert read.status_code in (401, 404)
