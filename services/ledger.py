"""What a parent reads of one local day (CONTRACT §13): limit, bonus, watched time, the day's
sessions with their end reasons and the ledger of what changed the budget, all from projections.
An answer is kept by the process and given again while the profile's read versions (and, for
``today``, its local date) stand (``services.profile_reads``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from adapters.container import Container
from domain import policy as rules
from domain.catalog import Profile
from domain.localtime import local_date
from domain.sessions import whole_minutes
from domain.timestamps import iso_ms
from projections.ledger import LedgerProjection
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection
from services import catalog
from services.policy import policy_of
from services.profile_reads import Made, kept_or_made

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str, today: date) -> date:
    """``YYYY-MM-DD`` or ``today``; ``ValueError`` otherwise."""
    if text == "today":
        return today
    if not _DATE.match(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def bonus_of(entries: list[tuple[Any, str, dict[str, Any]]]) -> int:
    """The day's bonus minutes: the sum of its grants."""
    return sum(int(fields["minutes"]) for _at, kind, fields in entries if kind == "bonus")


async def today_bonus_minutes(container: Container, profile: Profile, day: date) -> int:
    async with container.engine.connect() as conn:
        return bonus_of(await LedgerProjection().entries(conn, profile.id, day))


async def owned_day_ledger(
    container: Container, user_id: int, profile_id: int, text: str
) -> dict[str, Any] | None:
    """The caller's profile's day (``day_ledger``), or ``None`` if the profile is not theirs
    (``ValueError`` for a bad date, checked after the owner)."""

    async def make() -> Made[dict[str, Any]] | None:
        profile = await catalog.get_profile(container, user_id, profile_id)
        if profile is None:
            return None
        answer = await day_ledger(container, profile, text)
        today = date.fromisoformat(answer["date"]) if text == "today" else None
        return Made(answer, profile.user_id, profile.timezone, today)

    return await kept_or_made(container, ("day", profile_id, text), user_id, make)


async def day_ledger(container: Container, profile: Profile, text: str) -> dict[str, Any]:
    """The day's figures, sessions and ledger entries (``ValueError`` for a bad date)."""
    day = parse_day(text, local_date(container.clock.now(), profile.timezone))
    async with container.engine.connect() as conn:
        entries = await LedgerProjection().entries(conn, profile.id, day)
        totals = await StatsProjection().totals(conn, profile.id, [day], top=0)
        rows = await SessionsProjection().day_sessions(conn, profile.id, day)
        named = [int(f["session_id"]) for _at, _kind, f in entries if "session_id" in f]
        devices = await SessionsProjection().session_devices(conn, profile.id, named)
    limit = rules.day_limit_minutes(policy_of(profile, None), day)
    bonus = bonus_of(entries)
    watched_ms = totals.daily_ms.get(day, 0)
    return {
        "profile_id": profile.id,
        "date": day.isoformat(),
        "timezone": profile.timezone,
        "limit_minutes": limit,
        "bonus_minutes": bonus,
        "watched_minutes": whole_minutes(watched_ms),
        "remaining_minutes": max(0, limit + bonus - whole_minutes(watched_ms)),
        "sessions": [
            {
                "session_id": row["session_id"],
                "video_id": row["video_id"],
                "title": row["title"],
                "started_at": iso_ms(row["started_at"]),
                "ended_at": iso_ms(row["ended_at"]) if row["ended_at"] else None,
                "end_reason": row["end_reason"],
                "watched_minutes": whole_minutes(row["watched_ms"]),
                "device": _device_view(row["device"]),
            }
            for row in rows
        ],
        "events": [
            {"at": iso_ms(at), "type": kind, **fields, **_entry_device(fields, devices)}
            for at, kind, fields in entries
        ],
    }


def _device_view(device: dict[str, Any] | None) -> dict[str, Any] | None:
    """The device that watched, as the ledger shows it (``None``: no paired device)."""
    if device is None:
        return None
    revoked_at = device["revoked_at"]
    return {**device, "revoked_at": iso_ms(revoked_at) if revoked_at else None}


def _entry_device(
    fields: dict[str, Any], devices: dict[int, dict[str, Any] | None]
) -> dict[str, Any]:
    """``{"device": …}`` for an entry about a session (a cut-off, a stop), else nothing."""
    if "session_id" not in fields:
        return {}
    return {"device": _device_view(devices.get(int(fields["session_id"])))}
