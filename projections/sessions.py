"""The sessions table: one row per watch session, as its events describe it.

``session.started`` inserts the row; heartbeats move ``last_heartbeat_at``, the watched time and
the position; ``session.ended`` records how and when it ended. A batch is folded per session
first (``SessionRows``), so a busy session costs one row write per batch, not one per beat; a
``SessionRowWriter`` writes the fold (asyncpg's bulk statements, or SQLAlchemy's).

The row is also what ``GET /api/sessions/:id`` answers once the session's working state in Redis
has expired (``session_state`` below): the same fields, read back as a ``SessionState``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.tables import devices, profiles, videos, watch_sessions
from domain.events import SessionEnded, SessionHeartbeat, SessionStarted
from domain.sessions import MS_PER_SECOND, SessionState
from projections.base import Envelope, RowWriters, SqlProjection
from projections.bulk_sql import coalescing_update_sql, execute, insert_sql, raw_connection

_LATER = (SessionHeartbeat, SessionEnded)  # a tuple: isinstance is faster than on a union

MAX_SESSION_ID = 2**63 - 1  # BIGINT; ids come from a Redis counter

# Columns a later event may change; ``None`` in an update row means "leave as it is".
CHANGING = ("last_heartbeat_at", "ended_at", "end_reason", "watched_ms", "position")


def _changes(event: SessionHeartbeat | SessionEnded) -> dict[str, Any]:
    watched_ms = round(event.watched_seconds * MS_PER_SECOND)
    if isinstance(event, SessionHeartbeat):
        return {
            "last_heartbeat_at": event.occurred_at,
            "watched_ms": watched_ms,
            "position": event.position,
        }
    # As on the command side (``domain.sessions``): an end decided at a request (the player's,
    # or a heartbeat's at the limit) is the last beat; a timeout ends at the last real one.
    beat = {} if event.reason == "timeout" else {"last_heartbeat_at": event.ended_at}
    return {
        **beat,
        "ended_at": event.ended_at,
        "end_reason": event.reason,
        "watched_ms": watched_ms,
        "position": event.position,
    }


def _started_row(event: SessionStarted) -> dict[str, Any]:
    return {
        "session_id": event.session_id,
        "profile_id": event.profile_id,
        "video_id": event.video_id,
        "user_id": event.user_id,
        "public": event.public,
        "timezone": event.timezone,
        "local_date": date.fromisoformat(event.local_date),
        "started_at": event.occurred_at,
        "last_heartbeat_at": None,
        "ended_at": None,
        "end_reason": None,
        "watched_ms": 0,
        "position": None,
        "daily_limit_minutes": event.daily_limit_minutes,
        "device_id": event.device_id,
    }


@dataclass
class SessionRows:
    """A batch folded per session: the rows of sessions it started, and the changes to rows
    already there (``CHANGING`` columns; a ``None`` value means "leave as it is")."""

    new: dict[int, dict[str, Any]] = field(default_factory=dict)
    changed: dict[int, dict[str, Any]] = field(default_factory=dict)


def _fold(batch: Sequence[Envelope]) -> SessionRows:
    new: dict[int, dict[str, Any]] = {}
    changed: dict[int, dict[str, Any]] = {}
    for envelope in batch:
        event = envelope.event
        if isinstance(event, SessionStarted):
            new[event.session_id] = _started_row(event)
        elif isinstance(event, _LATER):
            changes = {k: v for k, v in _changes(event).items() if v is not None}
            target = new.get(event.session_id)
            if target is None:
                target = changed.setdefault(event.session_id, {})
            target.update(changes)
    return SessionRows(new, changed)


class SessionRowWriter(Protocol):
    """Writes a ``SessionRows`` fold to the sessions table, in the caller's transaction."""

    async def write(self, conn: AsyncConnection, table: sa.Table, rows: SessionRows) -> None: ...


class AsyncpgSessionRows:
    """``SessionRowWriter`` on asyncpg: one insert and one update statement (``bulk_sql``)."""

    async def write(self, conn: AsyncConnection, table: sa.Table, rows: SessionRows) -> None:
        raw = await raw_connection(conn)
        if rows.new:
            columns = tuple(next(iter(rows.new.values())))  # every row has _started_row's keys
            values = [list(row.values()) for row in rows.new.values()]
            await execute(raw, insert_sql(table, columns), values)
        if rows.changed:
            changes = [
                (sid, *(values.get(n) for n in CHANGING))
                for sid, values in sorted(rows.changed.items())
            ]
            await execute(raw, coalescing_update_sql(table, "session_id", CHANGING), changes)


class SqlAlchemySessionRows:
    """``SessionRowWriter`` on any database: an ``executemany`` insert and update."""

    async def write(self, conn: AsyncConnection, table: sa.Table, rows: SessionRows) -> None:
        if rows.new:
            await conn.execute(table.insert(), list(rows.new.values()))
        if rows.changed:
            await conn.execute(
                table.update()
                .where(table.c.session_id == sa.bindparam("sid"))
                .values(
                    {
                        name: sa.func.coalesce(
                            sa.bindparam(f"new_{name}", type_=table.c[name].type), table.c[name]
                        )
                        for name in CHANGING
                    }
                ),
                [
                    {"sid": sid, **{f"new_{n}": values.get(n) for n in CHANGING}}
                    for sid, values in rows.changed.items()
                ],
            )


WRITERS = RowWriters[SessionRowWriter](
    asyncpg=AsyncpgSessionRows(), sqlalchemy=SqlAlchemySessionRows()
)


class SessionsProjection(SqlProjection):
    """``session.*`` events into ``watch_sessions``."""

    name = "sessions"
    handles = frozenset({"session.started", "session.heartbeat", "session.ended"})
    live_tables = (watch_sessions,)

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        table = self.tables[watch_sessions.name]
        await WRITERS.pick(conn, self.backend).write(conn, table, _fold(batch))

    async def session_state(
        self, conn: AsyncConnection, session_id: int, user_id: int
    ) -> SessionState | None:
        """The parent ``user_id``'s session as projected, or ``None`` (missing or not theirs).

        The row holds no session token hash (the archive keeps no credentials), so only the
        parent can read it. A row from an event that predates ``daily_limit_minutes`` shows the
        profile's current limit (0 once the profile is gone).
        """
        if not 0 < session_id <= MAX_SESSION_ID:  # no such row, and no BIGINT to bind it to
            return None
        table = self.tables[watch_sessions.name]
        current_limit = (
            sa.select(profiles.c.daily_limit_minutes)
            .where(profiles.c.id == table.c.profile_id)
            .scalar_subquery()
        )
        limit = sa.func.coalesce(table.c.daily_limit_minutes, current_limit, 0)
        row = (
            await conn.execute(
                sa.select(table, limit.label("limit_minutes")).where(
                    table.c.session_id == session_id, table.c.user_id == user_id
                )
            )
        ).first()
        if row is None:
            return None
        last_heartbeat = _utc(row.last_heartbeat_at)
        started_at = _utc(row.started_at)
        assert started_at is not None  # a NOT NULL column
        return SessionState(
            session_id=int(row.session_id),
            profile_id=int(row.profile_id),
            video_id=int(row.video_id),
            user_id=int(row.user_id),
            timezone=row.timezone,
            daily_limit_minutes=int(row.limit_minutes),
            started_at=started_at,
            last_active_at=last_heartbeat or started_at,
            last_heartbeat=last_heartbeat,
            watched_ms=int(row.watched_ms),
            position=row.position,
            ended_at=_utc(row.ended_at),
            end_reason=row.end_reason,
            public=bool(row.public),
        )

    async def day_sessions(
        self, conn: AsyncConnection, profile_id: int, day: date
    ) -> list[dict[str, Any]]:
        """The sessions the profile started on local ``day``, oldest first, with their video's
        title (``None`` once the video is gone) and the device that started them
        (``device_of``)."""
        table = self.tables[watch_sessions.name]
        found = await conn.execute(
            sa.select(
                table,
                videos.c.title,
                devices.c.name.label("device_name"),
                devices.c.revoked_at.label("device_revoked_at"),
            )
            .select_from(
                table.outerjoin(videos, videos.c.id == table.c.video_id).outerjoin(
                    devices, devices.c.device_id == table.c.device_id
                )
            )
            .where(table.c.profile_id == profile_id, table.c.local_date == day)
            .order_by(table.c.started_at, table.c.session_id)
        )
        return [
            {
                "session_id": int(row.session_id),
                "video_id": int(row.video_id),
                "title": row.title,
                "started_at": _utc(row.started_at),
                "ended_at": _utc(row.ended_at),
                "end_reason": row.end_reason,
                "watched_ms": int(row.watched_ms),
                "device": _device(row),
            }
            for row in found
        ]

    async def session_devices(
        self, conn: AsyncConnection, profile_id: int, session_ids: Sequence[int]
    ) -> dict[int, dict[str, Any] | None]:
        """The device that started each of the profile's ``session_ids`` (``device_of``);
        sessions without a row are left out."""
        wanted = sorted({sid for sid in session_ids if 0 < sid <= MAX_SESSION_ID})
        if not wanted:
            return {}
        table = self.tables[watch_sessions.name]
        found = await conn.execute(
            sa.select(
                table.c.session_id,
                table.c.device_id,
                devices.c.name.label("device_name"),
                devices.c.revoked_at.label("device_revoked_at"),
            )
            .select_from(table.outerjoin(devices, devices.c.device_id == table.c.device_id))
            .where(table.c.profile_id == profile_id, table.c.session_id.in_(wanted))
        )
        return {int(row.session_id): _device(row) for row in found}


def _device(row: Any) -> dict[str, Any] | None:
    """``{device_id, name, revoked_at}`` of the paired device that started a session, or
    ``None`` (a parent's app, the public kids-mode route, or an event from before devices were
    recorded on sessions). A revoked device keeps its name, with when it was revoked; a device
    whose row is gone shows its id with ``name: null``."""
    if row.device_id is None:
        return None
    return {
        "device_id": int(row.device_id),
        "name": row.device_name,
        "revoked_at": _utc(row.device_revoked_at),
    }


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every stored instant is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
