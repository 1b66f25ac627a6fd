"""Kids-device pairing on Redis Cluster: refused with a clear 501, never a 500 (its keys are
named by secret codes alone and cannot share a slot yet; docs/operations.md). Runs in the
suite's cluster pass (``make test``); on one Redis pairing works (test_devices_api.py)."""

from __future__ import annotations

import pytest
from session_samples import Auth, Client, parent_setup

from adapters.settings import Settings
from api.devices import MSG_NO_PAIRING


async def test_pairing_on_a_cluster_is_refused_with_501(
    client: Client, auth: Auth, settings: Settings
) -> None:
    if not settings.redis_cluster:
        pytest.skip("one Redis: pairing works there (test_devices_api.py)")
    parent = auth()
    profile, _videos = await parent_setup(client, parent)
    started = await client.post("/api/devices/pair")
    polled = await client.post("/api/devices/token", json={"device_code": "x" * 43})
    confirmed = await client.post(
        f"/api/profiles/{profile['id']}/devices",
        json={"user_code": "BCDF-GHJK", "name": "TV"},
        headers=parent,
    )
    for answer in (started, polled, confirmed):
        assert (answer.status_code, MSG_NO_PAIRING in answer.text) == (501, True), answer.text
