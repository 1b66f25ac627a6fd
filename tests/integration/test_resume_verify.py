"""``medio replay --verify``: the live resume projection equals a rebuild from the archive."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from resume_env import title_deleted, title_saved

from adapters.container import Container
from domain.events import ProgressSaved
from projections.replay import verify
from projections.resume import resume_key

Drain = Callable[[], Awaitable[int]]


async def test_live_resume_projection_equals_its_rebuild_and_a_tampered_key_is_found(
    container: Container, drain: Drain
) -> None:
    clerk = f"user_{secrets.token_hex(6)}"
    now = container.clock.now()

    def saved(
        tmdb: str, seconds: float, ago: float, duration: float | None = None
    ) -> ProgressSaved:
        finished = duration is not None and seconds >= 0.9 * duration
        return title_saved(clerk, tmdb, now - timedelta(minutes=ago), seconds, duration, finished)

    for event in (
        saved("1", 10, 50),
        saved("2", 20, 40),
        saved("1", 15, 30),
        saved("3", 95, 20, duration=100),
        title_deleted(clerk, "2", now - timedelta(minutes=10)),
        saved("4", 1.5, 5),
        saved("4", 1.0, 6),  # older than the save before it, appended later: must lose
    ):
        await container.events.append(clerk, event)
    await drain()

    report = await verify(container, ["resume"])
    assert report.projections == ["resume"]
    assert report.differences == {}

    key = resume_key(clerk, "1")
    original = await container.redis.get(key)
    expiry = await container.redis.pexpiretime(key)
    await container.redis.set(key, b'{"currentTime":999,"updatedAt":"x"}', pxat=expiry)
    try:
        tampered = await verify(container, ["resume"])
        assert any(key in line for line in tampered.differences["resume"])
    finally:
        await container.redis.set(key, original, pxat=expiry)
    assert (await verify(container, ["resume"])).differences == {}
