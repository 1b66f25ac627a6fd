"""The day's ledger: what changed a profile's budget, one row per fact, per local day.

Bonuses, locks and unlocks, requests for more time and their decisions, policy changes, a
parent's stop and every session cut off (by the limit, bedtime or the parent) are kept in
``day_ledger`` under the profile's local day recorded in the event, in log order, so that
``GET /api/profiles/:id/days/:date`` can explain a day without reading raw events. Rows are
keyed by the event's place in the log, so a batch applied twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.tables import day_ledger
from domain.events import (
    AnyEvent,
    BonusGranted,
    PolicySet,
    ProfileLocked,
    ProfileUnlocked,
    SessionEnded,
    SessionStopRequested,
    TimeRequestDecided,
    TimeRequested,
)
from domain.timestamps import iso_ms
from projections.base import Envelope, SqlProjection, stream_id_key

CUT_OFF_REASONS = frozenset({"daily_limit", "bedtime", "parent"})
_encoder = msgspec.json.Encoder()


def entry_of(event: AnyEvent) -> tuple[int, str, str, dict[str, Any]] | None:
    """``(profile_id, local_date, type, fields)`` of a ledger entry, or ``None``."""
    if isinstance(event, BonusGranted):
        fields: dict[str, Any] = {"minutes": event.minutes, "total_minutes": event.total_minutes}
        if event.request_id is not None:
            fields["request_id"] = event.request_id
        return event.profile_id, event.local_date, "bonus", fields
    if isinstance(event, ProfileLocked):
        until = iso_ms(event.until) if event.until else None
        return event.profile_id, event.local_date, "locked", {"until": until}
    if isinstance(event, ProfileUnlocked):
        return event.profile_id, event.local_date, "unlocked", {}
    if isinstance(event, TimeRequested):
        fields = {"request_id": event.request_id, "minutes": event.minutes}
        return event.profile_id, event.local_date, "time_requested", fields
    if isinstance(event, TimeRequestDecided):
        fields = {"request_id": event.request_id, "minutes": event.minutes}
        return event.profile_id, event.local_date, f"time_request_{event.status}", fields
    if isinstance(event, SessionStopRequested):
        return (
            event.profile_id,
            event.local_date,
            "stop_requested",
            {"session_id": event.session_id},
        )
    if isinstance(event, PolicySet):
        fields = {
            "daily_limit_minutes": event.daily_limit_minutes,
            "weekday_limits": event.weekday_limits,
            "bedtime": event.bedtime,
            "warning_minutes": event.warning_minutes,
            "limit_action": event.limit_action,
            "timezone": event.timezone,
        }
        return event.profile_id, event.local_date, "policy_changed", fields
    if isinstance(event, SessionEnded) and event.reason in CUT_OFF_REASONS and event.local_date:
        fields = {"session_id": event.session_id, "reason": event.reason}
        return event.profile_id, event.local_date, "cut_off", fields
    return None


class LedgerProjection(SqlProjection):
    """Policy and cut-off events into ``day_ledger``."""

    name = "ledger"
    handles = frozenset(
        {
            "profile.policy_set",
            "profile.bonus_granted",
            "profile.locked",
            "profile.unlocked",
            "time_request.created",
            "time_request.decided",
            "session.stop_requested",
            "session.ended",
        }
    )
    live_tables = (day_ledger,)

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        rows = []
        for envelope in batch:
            entry = entry_of(envelope.event)
            if entry is None:
                continue
            profile_id, local_date, kind, fields = entry
            entry_ms, entry_seq = stream_id_key(envelope.stream_id)
            rows.append(
                {
                    "profile_id": profile_id,
                    "local_date": date.fromisoformat(local_date),
                    "shard": envelope.shard,
                    "entry_ms": entry_ms,
                    "entry_seq": entry_seq,
                    "at": envelope.event.occurred_at,
                    "type": kind,
                    "data": _encoder.encode(fields).decode(),
                }
            )
        if rows:
            await conn.execute(self.tables[day_ledger.name].insert(), rows)

    async def entries(
        self, conn: AsyncConnection, profile_id: int, day: date
    ) -> list[tuple[datetime, str, dict[str, Any]]]:
        """The day's entries in log order: ``(at, type, fields)``."""
        table = self.tables[day_ledger.name]
        found = await conn.execute(
            sa.select(table.c.at, table.c.type, table.c.data)
            .where(table.c.profile_id == profile_id, table.c.local_date == day)
            .order_by(table.c.at, table.c.shard, table.c.entry_ms, table.c.entry_seq)
        )
        return [
            (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC), row.type, _decoded(row.data))
            for row in found
        ]


def _decoded(data: str) -> dict[str, Any]:
    fields: dict[str, Any] = msgspec.json.decode(data)
    return fields
