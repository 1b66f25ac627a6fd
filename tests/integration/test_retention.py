"""``MEDIO_RETENTION_DAYS``: the retention run shreds the personal data of events older than
the horizon (whole sessions, progress saves), and the parents' stats stay what they were, live
and after a replay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from projector_env import isolated_stack

from adapters.container import Container
from adapters.settings import Settings
from bench.workload import append_all
from domain.events import (
    AnyEvent,
    DayShare,
    ProgressSaved,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
)
from projections.archive_pages import read_page
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection
from services.container import build_container
from services.retention import apply_retention

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)


def _session(session_id: int, at: datetime, end: bool = True) -> list[tuple[str, AnyEvent]]:
    common = {"session_id": session_id, "profile_id": 7, "video_id": 70 + session_id % 2}
    day = at.date().isoformat()
    events: list[AnyEvent] = [
        SessionStarted(
            occurred_at=at,
            actor="user_kept",
            user_id=1,
            timezone="UTC",
            local_date=day,
            **common,
        ),
        SessionHeartbeat(
            occurred_at=at + timedelta(seconds=60),
            actor="user_kept",
            shares=(DayShare(day, 60.0),),
            watched_seconds=60.0,
            **common,
        ),
    ]
    if end:
        events.append(
            SessionEnded(
                occurred_at=at + timedelta(seconds=90),
                actor="user_kept",
                reason="ended",
                started_at=at,
                ended_at=at + timedelta(seconds=90),
                shares=(DayShare(day, 30.0),),
                watched_seconds=90.0,
                **common,
            )
        )
    return [("7", e) for e in events]


def _save(title: str, at: datetime) -> tuple[str, AnyEvent]:
    event = ProgressSaved(
        occurred_at=at, actor="user_kept", clerk_id="user_kept", tmdb_id=title, current_time=5.0
    )
    return "user_kept", event


@pytest.fixture
def stack(settings: Settings) -> Iterator[Settings]:
    with isolated_stack(retention_days=40) as own:
        yield own.settings


@pytest.fixture
async def store(stack: Settings) -> AsyncIterator[Container]:
    container = build_container(stack)
    yield container
    await container.close()


async def _stats(container: Container) -> dict[str, Any]:
    async with container.engine.connect() as conn:
        return await StatsProjection().dump(conn)


async def test_old_events_are_shredded_and_stats_survive_a_replay(store: Container) -> None:
    history = [
        *_session(1, OLD),
        *_session(2, OLD + timedelta(hours=1)),
        _save("old-title", OLD),
        *_session(3, NOW - timedelta(hours=2)),
        _save("new-title", NOW - timedelta(hours=1)),
    ]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    before = await _stats(store)
    assert before["stats_totals"]

    shredded = await apply_retention(store)
    await project_pending(store)

    assert shredded == 7  # two old sessions of three events, one old save
    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 1000)
    erased = [e for e in page if e.erased]
    assert len(erased) == 7 and all(e.occurred_at < NOW - timedelta(days=40) for e in erased)
    assert "old-title" not in str(page) and "new-title" in str(page)
    assert {e.type for e in page} >= {"stats.carried", "privacy.retention_applied"}
    assert await _stats(store) == before
    async with store.engine.connect() as conn:
        rows = (await SessionsProjection().dump(conn))["watch_sessions"]
    assert [row[0] for row in rows] == [3]  # the old sessions' rows are gone too

    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _stats(store) == before
    assert await apply_retention(store) == 0  # nothing left to shred


async def test_a_session_running_at_the_horizon_waits_for_the_next_run(store: Container) -> None:
    history = _session(5, OLD, end=False)
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    assert await apply_retention(store) == 0
    assert (await verify(store)).differences == {}
