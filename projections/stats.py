"""Parents' stats tables: watched time per profile per local day, per video, and totals.

Everything ``GET /api/profiles/:id/stats`` needs is here, so the route never scans events:

* ``stats_daily``: watched ms per profile and local date (today, the last seven days);
* ``stats_videos``: sessions started and watched ms per profile and video (videos watched,
  favourites);
* ``stats_totals``: watched ms, sessions, and sessions that watched anything (the average).

A batch is summed in memory and added to the rows with one upsert per table, by a
``StatsRowWriter`` (asyncpg's bulk statement, or SQLAlchemy's ``ON CONFLICT``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.tables import stats_daily, stats_totals, stats_videos
from domain.events import SessionEnded, SessionHeartbeat, SessionStarted, StatsCarried
from domain.sessions import MS_PER_SECOND, share_ms
from projections.base import Envelope, RowWriters, SqlProjection
from projections.bulk_sql import execute, insert_sql, raw_connection

_WATCHED = (SessionHeartbeat, SessionEnded)  # a tuple: isinstance is faster than on a union


@dataclass
class CounterRows:
    """A batch's rows for one stats table: key values, then counter values."""

    table: sa.Table
    keys: tuple[str, ...]
    counters: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class StatsRowWriter(Protocol):
    """Adds a batch's counters to keyed rows in the caller's transaction: inserts each row, or
    adds its counters to the row already there."""

    async def add(self, conn: AsyncConnection, counted: CounterRows) -> None: ...


class AsyncpgStatsRows:
    """``StatsRowWriter`` on asyncpg: one ``INSERT ... ON CONFLICT`` statement (``bulk_sql``)."""

    async def add(self, conn: AsyncConnection, counted: CounterRows) -> None:
        columns = counted.keys + counted.counters
        sql = insert_sql(counted.table, columns, counted.keys)
        await execute(await raw_connection(conn), sql, counted.rows)


class SqlAlchemyStatsRows:
    """``StatsRowWriter`` on any database: an ``executemany`` upsert."""

    async def add(self, conn: AsyncConnection, counted: CounterRows) -> None:
        table, columns = counted.table, counted.keys + counted.counters
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
        statement = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in counted.keys],
            set_={c: table.c[c] + insert.excluded[c] for c in counted.counters},
        )
        rows = [dict(zip(columns, row, strict=True)) for row in counted.rows]
        await conn.execute(statement, rows)


WRITERS = RowWriters[StatsRowWriter](asyncpg=AsyncpgStatsRows(), sqlalchemy=SqlAlchemyStatsRows())


@lru_cache(maxsize=256)
def _local_date(text: str) -> date:
    """A share's local date (a batch has a handful of distinct ones: parsed once each)."""
    return date.fromisoformat(text)


@dataclass
class StatsSums:
    daily: dict[tuple[int, date], int]
    videos: dict[tuple[int, int], list[int]]  # [sessions, ms]
    totals: dict[int, list[int]]  # [ms, sessions, watched sessions]


def _carry(sums: StatsSums, event: StatsCarried) -> None:
    """Add what shredded sessions had added (``services.retention``)."""
    for local_date, ms in event.daily:
        sums.daily[(event.profile_id, _local_date(local_date))] += ms
    for video_id, sessions, ms in event.videos:
        counts = sums.videos[(event.profile_id, video_id)]
        counts[0] += sessions
        counts[1] += ms
    totals = sums.totals[event.profile_id]
    for i, value in enumerate(event.totals):
        totals[i] += value


def sum_stats(batch: Sequence[Envelope]) -> StatsSums:
    """What ``batch`` adds to each profile's rows (also what a retention run carries over)."""
    sums = StatsSums(
        daily=defaultdict(int),
        videos=defaultdict(lambda: [0, 0]),
        totals=defaultdict(lambda: [0, 0, 0]),
    )
    for envelope in batch:
        event = envelope.event
        if isinstance(event, SessionStarted):
            sums.videos[(event.profile_id, event.video_id)][0] += 1
            sums.totals[event.profile_id][1] += 1
        elif isinstance(event, _WATCHED):
            added = 0
            for share in event.shares:
                ms = share_ms(share)
                added += ms
                sums.daily[(event.profile_id, _local_date(share.local_date))] += ms
            sums.videos[(event.profile_id, event.video_id)][1] += added
            totals = sums.totals[event.profile_id]
            totals[0] += added
            session_ms = round(event.watched_seconds * MS_PER_SECOND)
            if added > 0 and session_ms == added:  # the session's first watched time
                totals[2] += 1
        elif isinstance(event, StatsCarried):
            _carry(sums, event)
    return sums


@dataclass(frozen=True)
class ProfileTotals:
    """What the stats tables hold for one profile, ready for ``domain.stats``."""

    watched_ms: int
    watched_sessions: int
    videos_watched: int
    daily_ms: dict[date, int]
    top_videos: list[tuple[int, int, int]]  # (video_id, watch_count, watched_ms), best first


class StatsProjection(SqlProjection):
    """``session.*`` events into the per-day, per-video and total stats of each profile."""

    name = "stats"
    handles = frozenset({"session.started", "session.heartbeat", "session.ended", "stats.carried"})
    live_tables = (stats_daily, stats_videos, stats_totals)

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        sums = sum_stats(batch)
        writer = WRITERS.pick(conn, self.backend)
        for counted in (
            CounterRows(
                self.tables[stats_daily.name],
                ("profile_id", "local_date"),
                ("watched_ms",),
                [(p, d, ms) for (p, d), ms in sums.daily.items() if ms],
            ),
            CounterRows(
                self.tables[stats_videos.name],
                ("profile_id", "video_id"),
                ("watch_count", "watched_ms"),
                [(p, v, n, ms) for (p, v), (n, ms) in sums.videos.items()],
            ),
            CounterRows(
                self.tables[stats_totals.name],
                ("profile_id",),
                ("watched_ms", "sessions", "watched_sessions"),
                [(p, ms, n, w) for p, (ms, n, w) in sums.totals.items()],
            ),
        ):
            if counted.rows:
                # In key order (keys are unique and come first), so concurrent batches of
                # different shards lock shared rows in one order.
                counted.rows.sort()
                await writer.add(conn, counted)

    async def totals(
        self, conn: AsyncConnection, profile_id: int, days: Sequence[date], top: int
    ) -> ProfileTotals:
        """The profile's totals, its watched ms on ``days``, and its ``top`` videos."""
        daily_t = self.tables[stats_daily.name]
        videos_t = self.tables[stats_videos.name]
        totals_t = self.tables[stats_totals.name]
        totals = (
            await conn.execute(
                sa.select(totals_t.c.watched_ms, totals_t.c.watched_sessions).where(
                    totals_t.c.profile_id == profile_id
                )
            )
        ).first()
        daily = await conn.execute(
            sa.select(daily_t.c.local_date, daily_t.c.watched_ms).where(
                daily_t.c.profile_id == profile_id, daily_t.c.local_date.in_(list(days))
            )
        )
        watched = (videos_t.c.profile_id == profile_id) & (videos_t.c.watch_count > 0)
        videos_watched = await conn.scalar(
            sa.select(sa.func.count()).select_from(videos_t).where(watched)
        )
        ranked = await conn.execute(
            sa.select(videos_t.c.video_id, videos_t.c.watch_count, videos_t.c.watched_ms)
            .where(watched)
            .order_by(
                videos_t.c.watch_count.desc(), videos_t.c.watched_ms.desc(), videos_t.c.video_id
            )
            .limit(top)
        )
        return ProfileTotals(
            watched_ms=int(totals.watched_ms) if totals else 0,
            watched_sessions=int(totals.watched_sessions) if totals else 0,
            videos_watched=int(videos_watched or 0),
            daily_ms={_as_date(row.local_date): int(row.watched_ms) for row in daily},
            top_videos=[(int(r.video_id), int(r.watch_count), int(r.watched_ms)) for r in ranked],
        )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
