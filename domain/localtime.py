"""Local calendar days in a profile's IANA time zone: what "today" and midnight mean for limits.

DST days last 23 or 25 hours; every day boundary here is a local midnight converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60_000


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The profile's zone; an unknown name (never accepted by the catalog) falls back to UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar day ``moment`` falls on in ``timezone``."""
    return moment.astimezone(zone(timezone)).date()


@lru_cache(maxsize=4096)
def start_of_local_day(day: date, timezone: str) -> datetime:
    """The first instant of ``day`` in ``timezone`` (past a DST gap at midnight, if any).

    Cached: every heartbeat asks for its profile's next midnight (the accrual's split and the
    limit's end), the same instant all day long.
    """
    return datetime.combine(day, time(0), tzinfo=zone(timezone)).astimezone(UTC)
