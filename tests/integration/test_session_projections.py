"""Sessions, stats and daily-limit projections applied to hand-built envelopes.

They run on the scratch copies (``scratch=True``) so the live read models of other tests are
untouched; the same events applied in one batch or one event at a time must end equal, which is
what a replay from the archive relies on.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from session_samples import envelopes

from adapters.container import Container
from domain.events import AnyEvent, DayShare, SessionEnded, SessionHeartbeat, SessionStarted
from projections.base import Envelope, SqlProjection
from projections.daily_limit import KEEP_DAYS, DailyLimitCounters
from projections.redis_batch import apply_redis
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection

T0 = datetime(2026, 3, 3, 14, 50, tzinfo=UTC)  # 23:50 in Tokyo


def script(profile_id: int, first_session: int) -> list[AnyEvent]:
    """Two sessions of one profile: one across Tokyo midnight, one that watched nothing."""
    s1, s2 = first_session, first_session + 1
    common = {"actor": "t", "profile_id": profile_id}
    return [
        SessionStarted(
            occurred_at=T0, session_id=s1, video_id=5, user_id=1, timezone="Asia/Tokyo",
            local_date="2026-03-03", **common,
        ),
        SessionHeartbeat(
            occurred_at=T0 + timedelta(minutes=9, seconds=30), session_id=s1, video_id=5,
            shares=(DayShare("2026-03-03", 90.0),), position=570.0, watched_seconds=90.0,
            **common,
        ),
        SessionStarted(
            occurred_at=T0 + timedelta(minutes=10), session_id=s2, video_id=6, user_id=1,
            timezone="Asia/Tokyo", local_date="2026-03-04", public=True, **common,
        ),
        SessionHeartbeat(
            occurred_at=T0 + timedelta(minutes=10, seconds=30), session_id=s1, video_id=5,
            shares=(DayShare("2026-03-03", 30.0), DayShare("2026-03-04", 30.0)),
            watched_seconds=150.0, **common,
        ),
        SessionEnded(
            occurred_at=T0 + timedelta(minutes=11), session_id=s2, video_id=6, reason="ended",
            ended_at=T0 + timedelta(minutes=11), started_at=T0 + timedelta(minutes=10),
            **common,
        ),
        SessionEnded(
            occurred_at=T0 + timedelta(minutes=20), session_id=s1, video_id=5, reason="timeout",
            ended_at=T0 + timedelta(minutes=10, seconds=30), started_at=T0,
            watched_seconds=150.0, **common,
        ),
    ]  # fmt: skip


@pytest.fixture
async def scratch_sql(container: Container) -> AsyncIterator[list[SqlProjection]]:
    """Empty scratch copies of the sessions and stats tables."""
    projections: list[SqlProjection] = [
        SessionsProjection(scratch=True),
        StatsProjection(scratch=True),
    ]
    async with container.engine.begin() as conn:
        for projection in projections:
            for table in projection.tables.values():
                await conn.run_sync(table.create, checkfirst=True)
                await conn.execute(table.delete())
    yield projections
    async with container.engine.begin() as conn:
        for projection in projections:
            for table in projection.tables.values():
                await conn.run_sync(table.drop, checkfirst=True)


async def _apply_sql(
    container: Container, projections: Sequence[SqlProjection], batches: Sequence[list[Envelope]]
) -> dict[str, Any]:
    for batch in batches:
        async with container.engine.begin() as conn:
            for projection in projections:
                todo = [e for e in batch if e.type in projection.handles]
                if todo:
                    await projection.apply(conn, todo)
    async with container.engine.connect() as conn:
        return {p.name: await p.dump(conn) for p in projections}


async def _clear_sql(container: Container, projections: Sequence[SqlProjection]) -> None:
    async with container.engine.begin() as conn:
        for projection in projections:
            for table in projection.tables.values():
                await conn.execute(table.delete())


async def test_sessions_rows_follow_their_events(
    container: Container, scratch_sql: list[SqlProjection]
) -> None:
    await _apply_sql(container, scratch_sql, [envelopes(script(7, 100))])
    table = scratch_sql[0].tables["watch_sessions"]
    async with container.engine.connect() as conn:
        rows = {r.session_id: r for r in await conn.execute(sa.select(table))}
    crossing, empty = rows[100], rows[101]
    assert crossing.local_date == date(2026, 3, 3)
    assert crossing.watched_ms == 150_000
    assert crossing.position == 570.0  # a beat without a position keeps the last one
    assert crossing.last_heartbeat_at == T0 + timedelta(minutes=10, seconds=30)
    assert (crossing.end_reason, crossing.ended_at) == ("timeout", crossing.last_heartbeat_at)
    assert (empty.public, empty.watched_ms, empty.end_reason) == (True, 0, "ended")
    # Ended by the player: its end is its last beat, as the session's own state says.
    assert empty.last_heartbeat_at == empty.ended_at == T0 + timedelta(minutes=11)


async def test_stats_sum_days_videos_and_sessions_that_watched(
    container: Container, scratch_sql: list[SqlProjection]
) -> None:
    await _apply_sql(container, scratch_sql, [envelopes(script(7, 100))])
    stats = scratch_sql[1]
    async with container.engine.connect() as conn:
        dumped = await stats.dump(conn)
    assert dumped["stats_daily"] == [
        (7, date(2026, 3, 3), 120_000),
        (7, date(2026, 3, 4), 30_000),
    ]
    assert dumped["stats_videos"] == [(7, 5, 1, 150_000), (7, 6, 1, 0)]
    assert dumped["stats_totals"] == [(7, 150_000, 2, 1)]


async def test_one_batch_or_one_event_at_a_time_end_equal(
    container: Container, scratch_sql: list[SqlProjection]
) -> None:
    events = envelopes(script(7, 100) + script(8, 200) + script(7, 300))
    whole = await _apply_sql(container, scratch_sql, [events])
    await _clear_sql(container, scratch_sql)
    singles = await _apply_sql(container, scratch_sql, [[e] for e in events])
    await _clear_sql(container, scratch_sql)
    cut = random.Random(4).randint(1, len(events) - 1)
    halves = await _apply_sql(container, scratch_sql, [events[:cut], events[cut:]])
    assert whole == singles == halves
    assert whole["stats"]["stats_totals"] == [(7, 300_000, 4, 2), (8, 150_000, 2, 1)]


async def test_totals_rank_videos_and_pick_the_asked_days(
    container: Container, scratch_sql: list[SqlProjection]
) -> None:
    await _apply_sql(container, scratch_sql, [envelopes(script(7, 100) + script(7, 300))])
    stats = scratch_sql[1]
    assert isinstance(stats, StatsProjection)
    async with container.engine.connect() as conn:
        totals = await stats.totals(conn, 7, [date(2026, 3, 4), date(2026, 3, 5)], top=1)
    assert (totals.watched_ms, totals.watched_sessions, totals.videos_watched) == (300_000, 2, 2)
    assert totals.daily_ms == {date(2026, 3, 4): 60_000}
    assert totals.top_videos == [(5, 2, 300_000)]


# Daily-limit counters (Redis) -------------------------------------------------------------------


def _beat(profile_id: int, local_date: str, seconds: float) -> SessionHeartbeat:
    return SessionHeartbeat(
        occurred_at=T0, actor="t", session_id=1, profile_id=profile_id, video_id=1,
        shares=(DayShare(local_date, seconds),), watched_seconds=seconds,
    )  # fmt: skip


async def _apply_redis(
    container: Container, projection: DailyLimitCounters, batches: Sequence[list[Envelope]]
) -> dict[str, Any]:
    for batch in batches:
        await apply_redis(container.redis, projection, batch)
    return await projection.dump(container.redis)


async def test_daily_counters_sum_per_local_date_and_drop_old_days(container: Container) -> None:
    projection = DailyLimitCounters(scratch=True)
    await projection.clear(container.redis)
    day = date(2026, 3, 1)
    later = (day + timedelta(days=KEEP_DAYS + 1)).isoformat()
    events = envelopes(
        [
            _beat(7, "2026-03-01", 60.0),
            _beat(7, "2026-03-01", 30.5),
            _beat(8, "2026-03-01", 5),
            _beat(7, later, 10),
        ]
    )
    dumped = await _apply_redis(container, projection, [events[:3], events[3:]])
    assert dumped == {"7:2026-03-05": 10_000, "8:2026-03-01": 5_000}
    await projection.clear(container.redis)
    assert await _apply_redis(container, projection, [events]) == dumped
    await projection.clear(container.redis)
    assert await projection.dump(container.redis) == {}


async def test_daily_counters_keep_recent_days(container: Container) -> None:
    projection = DailyLimitCounters(scratch=True)
    await projection.clear(container.redis)
    events = envelopes([_beat(9, "2026-03-03", 60.0), _beat(9, "2026-03-04", 1.5)])
    dumped = await _apply_redis(container, projection, [events])
    assert dumped == {"9:2026-03-03": 60_000, "9:2026-03-04": 1_500}
    await projection.clear(container.redis)
