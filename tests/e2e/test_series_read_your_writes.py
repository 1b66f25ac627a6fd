"""Read your own writes on the series routes (CONTRACT §4, §4a): no client change, no sleep.

A projector runs in the background as a worker would (the ``projector`` fixture); the player
saves an episode and reads its series back at once.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar.testing import AsyncTestClient

Auth = Callable[..., dict[str, str]]
SERIES = "/api/progress/series"

pytestmark = pytest.mark.usefixtures("projector")


async def test_save_then_read_at_once_never_misses(client: AsyncTestClient, auth: Auth) -> None:
    clerk = "ryw_series"
    headers = auth(clerk)
    misses = 0
    for i in range(200):
        series, episode = f"s{i % 3}", f"e{i}"  # every save moves its series to a new episode
        body = {"clerkId": clerk, "seriesId": series, "tmdbId": episode, "currentTime": i}
        assert (await client.post(SERIES, json=body, headers=headers)).status_code == 204
        one = await client.get(f"{SERIES}/{clerk}/{series}", headers=headers)
        current = await client.get(f"{SERIES}/{clerk}/{series}/{episode}", headers=headers)
        listed = await client.get(f"{SERIES}/{clerk}", headers=headers)
        expected = {"seriesId": series, "tmdbId": episode, "currentTime": i}
        series_seen = one.status_code == 200 and expected.items() <= one.json().items()
        episode_seen = current.status_code == 200 and current.json() == one.json()
        newest_first = listed.json()[:1] == [one.json()] if series_seen else False
        misses += not (series_seen and episode_seen and newest_first)
    assert misses == 0


async def test_delete_right_after_a_save_is_204(client: AsyncTestClient, auth: Auth) -> None:
    clerk = "ryw_series_delete"
    headers = auth(clerk)
    for i in range(20):
        body = {"clerkId": clerk, "seriesId": f"s{i}", "tmdbId": "1", "currentTime": 5}
        assert (await client.post(SERIES, json=body, headers=headers)).status_code == 204
        deleted = await client.delete(f"{SERIES}/{clerk}/s{i}", headers=headers)
        assert deleted.status_code == 204
        gone = await client.get(f"{SERIES}/{clerk}/s{i}", headers=headers)
        assert gone.status_code == 404
