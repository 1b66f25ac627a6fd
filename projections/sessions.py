"""The sessions table: one row per watch session, as its events describe it.

``session.started`` inserts the row; heartbeats move ``last_heartbeat_at``, the watched time and
the position; ``session.ended`` records how and when it ended. A batch is folded per session
first, so a busy session costs one row write per batch, not one per beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.events import SessionEnded, SessionHeartbeat, SessionStarted
from domain.sessions import MS_PER_SECOND
from medio.tables import watch_sessions
from projections.base import Envelope, SqlProjection
from projections.bulk_sql import (
    coalescing_update_sql,
    execute,
    insert_sql,
    raw_connection,
)

_LATER = (SessionHeartbeat, SessionEnded)  # a tuple: isinstance is faster than on a union

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
    beat = {"last_heartbeat_at": event.ended_at} if event.reason == "daily_limit" else {}
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
    }


class SessionsProjection(SqlProjection):
    """``session.*`` events into ``watch_sessions``."""

    name = "sessions"
    handles = frozenset({"session.started", "session.heartbeat", "session.ended"})
    live_tables = (watch_sessions,)

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
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
        table = self.tables[watch_sessions.name]
        raw = await raw_connection(conn)
        if raw is not None:
            await _apply_rows(raw, table, new, changed)
            return
        if new:
            await conn.execute(table.insert(), list(new.values()))
        if changed:
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
                    for sid, values in changed.items()
                ],
            )


async def _apply_rows(
    raw: Any, table: sa.Table, new: dict[int, dict[str, Any]], changed: dict[int, dict[str, Any]]
) -> None:
    """The same inserts and updates as one statement each, on asyncpg (see ``bulk_sql``)."""
    if new:
        columns = tuple(next(iter(new.values())))  # every row has _started_row's keys
        await execute(raw, insert_sql(table, columns), [list(row.values()) for row in new.values()])
    if changed:
        rows = [
            (sid, *(values.get(n) for n in CHANGING)) for sid, values in sorted(changed.items())
        ]
        await execute(raw, coalescing_update_sql(table, "session_id", CHANGING), rows)
