"""Read your own writes (CONTRACT §4): a read after an answered save or delete reflects it.

A projector runs in the background as a worker would; the player saves and reads back at once,
with no client change and no sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app

Auth = Callable[..., dict[str, str]]


@pytest.mark.usefixtures("projector")
@pytest.mark.parametrize(
    ("clerk", "rounds", "keyed"), [("ryw_titles", 200, False), ("ryw_keyed", 50, True)]
)
async def test_save_then_read_at_once_never_misses(
    client: AsyncTestClient, auth: Auth, clerk: str, rounds: int, keyed: bool
) -> None:
    """A save with an ``Idempotency-Key`` (stored with its answer) is noted like any save."""
    headers = auth(clerk)
    misses = 0
    for i in range(rounds):
        body = {"clerkId": clerk, "tmdbId": str(i % 7), "currentTime": i}
        key = {"Idempotency-Key": f"ryw-keyed-{i}-{time.time_ns()}"} if keyed else {}
        saved = await client.post("/api/progress", json=body, headers={**headers, **key})
        assert saved.status_code == 204
        one = await client.get(f"/api/progress/{clerk}/{i % 7}", headers=headers)
        listed = await client.get(f"/api/progress/{clerk}", headers=headers)
        title_seen = one.status_code == 200 and one.json()["currentTime"] == i
        newest_first = listed.json()[:1] == [{"tmdbId": str(i % 7), **one.json()}]
        misses += not (title_seen and newest_first)
    assert misses == 0


@pytest.mark.usefixtures("projector")
async def test_delete_right_after_a_save_is_204(client: AsyncTestClient, auth: Auth) -> None:
    clerk = "ryw_delete"
    headers = auth(clerk)
    for i in range(20):
        body = {"clerkId": clerk, "tmdbId": f"t{i}", "currentTime": 5}
        assert (await client.post("/api/progress", json=body, headers=headers)).status_code == 204
        deleted = await client.delete(f"/api/progress/{clerk}/t{i}", headers=headers)
        assert deleted.status_code == 204
        gone = await client.get(f"/api/progress/{clerk}/t{i}", headers=headers)
        assert gone.status_code == 404


async def test_only_the_writer_waits_and_only_until_the_timeout(
    settings: Settings, auth: Auth
) -> None:
    """No projector: the writer's read waits out the timeout; another user's does not wait."""
    app = create_app(msgspec.structs.replace(settings, read_your_writes_timeout_ms=600))
    async with AsyncTestClient(app=app) as client:
        writer, other = auth("ryw_writer"), auth("ryw_other")
        body = {"clerkId": "ryw_writer", "tmdbId": "1", "currentTime": 3}
        assert (await client.post("/api/progress", json=body, headers=writer)).status_code == 204

        started = time.monotonic()
        assert (await client.get("/api/progress/ryw_other", headers=other)).json() == []
        others_wait = time.monotonic() - started

        started = time.monotonic()
        stale = await client.get("/api/progress/ryw_writer/1", headers=writer)
        writers_wait = time.monotonic() - started
    assert stale.status_code == 404  # not projected: answers what there is, after the wait
    assert writers_wait >= 0.6
    assert others_wait < 0.3
