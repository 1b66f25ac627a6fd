"""``medio replay`` and ``--verify`` cover the series resume projection."""

from __future__ import annotations

from datetime import timedelta

from resume_env import series_deleted, series_saved

from adapters.container import Container
from domain.events import SeriesProgressSaved
from projections.replay import rebuild, replayable, verify
from projections.runtime import project_pending
from projections.series_resume import SeriesResumeProjection, series_key

CLERK = "user_series_verify"


async def _history(container: Container) -> None:
    """Saves across episodes and series, a late older save, a finished save and a delete."""
    now = container.clock.now()

    def saved(series: str, episode: str, ago: float, seconds: float = 10) -> SeriesProgressSaved:
        at = now - timedelta(minutes=ago)
        return series_saved(CLERK, series, episode, at, seconds, 100, finished=seconds >= 90)

    for event in (
        saved("s1", "e1", 50),
        saved("s2", "e1", 45),
        saved("s1", "e2", 40),
        saved("s3", "e1", 35),
        saved("s1", "e0", 42),  # older than the save before it, appended later: must lose
        saved("s2", "e2", 30, seconds=95),  # finished
        series_deleted(CLERK, "s3", now - timedelta(minutes=20)),
        saved("s4", "e7", 10),
    ):
        await container.events.append(CLERK, event)
    await project_pending(container)


async def test_series_resume_is_replayable_and_verifies_clean_until_tampered(
    iso: Container,
) -> None:
    assert "series_resume" in replayable()
    await _history(iso)
    live = await SeriesResumeProjection().dump(iso.redis)
    assert series_key(CLERK, "s1", "e2") in live and series_key(CLERK, "s4", "e7") in live
    report = await verify(iso, ["series_resume"])
    assert (report.projections, report.differences) == (["series_resume"], {})

    key = series_key(CLERK, "s1", "e2")
    await iso.redis.set(key, b'{"currentTime":999}', keepttl=True)
    tampered = await verify(iso, ["series_resume"])
    assert any(key in line for line in tampered.differences["series_resume"])

    await rebuild(iso, ["series_resume"])
    assert await SeriesResumeProjection().dump(iso.redis) == live
    assert (await verify(iso)).differences == {}
