"""Parents' stats (CONTRACT §6): the figures, from projected totals, in the profile's days.

The projections keep exact milliseconds; these rules turn them into the contract's whole
minutes and name the last seven local days by weekday.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from domain.sessions import MS_PER_MINUTE, whole_minutes

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FAVORITES = 5


def last_seven_days(today: date) -> list[date]:
    """The seven local days ending with ``today``, oldest first."""
    return [today - timedelta(days=back) for back in range(6, -1, -1)]


def weekly_stats(today: date, watched_ms_by_day: Mapping[date, int]) -> dict[str, int]:
    """Whole minutes per weekday over the last seven days, keyed ``monday`` … ``sunday``."""
    minutes = {
        WEEKDAYS[day.weekday()]: whole_minutes(watched_ms_by_day.get(day, 0))
        for day in last_seven_days(today)
    }
    return {name: minutes[name] for name in WEEKDAYS}


def average_session_minutes(total_ms: int, sessions_with_watch_time: int) -> int:
    """Watched minutes per session that watched anything, rounded half up; 0 with none."""
    if sessions_with_watch_time <= 0:
        return 0
    return int(total_ms / MS_PER_MINUTE / sessions_with_watch_time + 0.5)
