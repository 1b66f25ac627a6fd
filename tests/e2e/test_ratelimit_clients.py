"""Rate limits count each device and session token as a client of its own (CONTRACT §8), so
several kids devices behind one home router do not share a budget, while requests without a
live token (none, made up, or revoked) are still counted by address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from session_samples import Auth, Client, clocked_client, parent_setup

from adapters.settings import Settings
from domain.clock import FakeClock

pytestmark = pytest.mark.usefixtures("fresh_rate_counts")


@pytest.fixture
async def limited(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    """The API with small budgets, on the same stores and clock as ``api_on_clock``."""
    limits = {"rate_limit_general": "3/900", "rate_limit_telemetry": "2/900"}
    async with clocked_client(settings, clock, rate_limit_enabled=True, **limits) as (client, _):
        yield client


async def _device(client: Client, clock: FakeClock, parent: dict[str, str], pid: int) -> str:
    pairing = (await client.post("/api/devices/pair")).json()
    body = {"user_code": pairing["user_code"], "name": "TV"}
    confirmed = await client.post(f"/api/profiles/{pid}/devices", json=body, headers=parent)
    assert confirmed.status_code == 201, confirmed.text
    clock.advance(pairing["interval"])
    token = await client.post("/api/devices/token", json={"device_code": pairing["device_code"]})
    assert token.status_code == 200, token.text
    return str(token.json()["device_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_two_devices_behind_one_address_each_have_their_own_budget(
    api_on_clock: Client, limited: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, _videos = await parent_setup(api_on_clock, parent)
    first = await _device(api_on_clock, clock, parent, profile["id"])
    second = await _device(api_on_clock, clock, parent, profile["id"])

    burst = [await limited.get("/api/device", headers=_bearer(first)) for _ in range(4)]
    assert [r.status_code for r in burst] == [200, 200, 200, 429]
    # The first device's burst refuses neither the second device nor a caller without a token.
    other = await limited.get("/api/device", headers=_bearer(second))
    assert other.status_code == 200, other.text
    assert other.headers["x-ratelimit-remaining"] == "2"
    anonymous = await limited.get("/api/csrf-token")
    assert anonymous.status_code == 200 and anonymous.headers["x-ratelimit-remaining"] == "2"


async def test_each_session_token_is_its_own_client(
    api_on_clock: Client, limited: Client, auth: Auth, clock: FakeClock
) -> None:
    parent = auth()
    profile, videos = await parent_setup(api_on_clock, parent)
    tokens = []
    for video in videos[:2]:
        body = {"profile_id": profile["id"], "video_id": video}
        started = await api_on_clock.post("/api/sessions/start", json=body, headers=parent)
        assert started.status_code == 201, started.text
        tokens.append((started.json()["session_id"], started.json()["session_token"]))

    (one, one_token), (two, two_token) = tokens
    beats = []
    for _ in range(3):
        clock.advance(30)
        beat = await limited.post(
            f"/api/sessions/{one}/heartbeat", headers={"X-Session-Token": one_token}
        )
        beats.append(beat.status_code)
    assert beats == [200, 200, 429]
    other = await limited.post(f"/api/sessions/{two}/heartbeat", headers=_bearer(two_token))
    assert other.status_code == 200, other.text
    assert other.headers["x-ratelimit-remaining"] == "1"


async def test_requests_without_a_live_token_are_counted_by_address(
    api_on_clock: Client, limited: Client, auth: Auth, clock: FakeClock
) -> None:
    """Made-up device tokens, a revoked one and none at all share the address's budget: a
    token buys a budget of its own only once it is live."""
    parent = auth()
    profile, _videos = await parent_setup(api_on_clock, parent)
    token = await _device(api_on_clock, clock, parent, profile["id"])
    pid = profile["id"]
    device_id = (await api_on_clock.get(f"/api/profiles/{pid}/devices", headers=parent)).json()[
        "devices"
    ][0]["device_id"]
    revoked = await api_on_clock.delete(f"/api/profiles/{pid}/devices/{device_id}", headers=parent)
    assert revoked.status_code == 204

    answers = [
        await limited.get("/api/device", headers=_bearer("dev_made-up-1")),
        await limited.get("/api/device", headers=_bearer(token)),  # revoked
        await limited.get("/api/csrf-token"),
        await limited.get("/api/device", headers=_bearer("dev_made-up-2")),
        await limited.get("/api/csrf-token", headers={"X-Session-Token": "sess_made-up"}),
    ]
    assert [r.status_code for r in answers] == [401, 401, 200, 429, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
