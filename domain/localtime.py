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


# The last day worked out, ``(moment, timezone, day)``: a heartbeat asks for the day of one
# instant in one zone five times over (its accrual, today's count, the budget, bedtime and the
# limit's end), and each answer is a zone conversion. A tuple is swapped in whole, so a reader
# in another thread sees an old answer or a new one, never half of each.
_last: tuple[datetime | None, str, date] = (None, "", date.min)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar day ``moment`` falls on in ``timezone``."""
    global _last
    last = _last
    if last[0] == moment and last[1] == timezone:
        return last[2]
    day = moment.astimezone(zone(timezone)).date()
    _last = (moment, timezone, day)
    return day


@lru_cache(maxsize=4096)
def start_of_local_day(day: date, timezone: str) -> datetime:
    """The first instant of ``day`` in ``timezone`` (past a DST gap at midnight, if any).

    Cached: every heartbeat asks for its profile's next midnight (the accrual's split and the
    limit's end), the same instant all day long.
    """
    return datetime.combine(day, time(0), tzinfo=zone(timezone)).astimezone(UTC)
