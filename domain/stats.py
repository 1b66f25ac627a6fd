"""Parents' stats (CONTRACT §6): the figures, from projected totals, in the profile's days.

The projections keep exact milliseconds; these rules turn them into the contract's whole
minutes and name the last seven local days by weekday.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import msgspec

from domain.sessions import MS_PER_MINUTE, whole_minutes

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FAVORITES = 5


class FavoriteVideo(msgspec.Struct, frozen=True):
    """One of the profile's most watched videos: sessions on it, and whole minutes watched."""

    video_id: int
    title: str
    watch_count: int
    total_minutes: int


class ProfileStats(msgspec.Struct, frozen=True):
    """Exactly the fields of ``GET /api/profiles/:id/stats`` (seed 004, CONTRACT §6)."""

    profile_id: int
    total_watch_time_minutes: int
    videos_watched: int
    average_session_minutes: int
    today_watch_time_minutes: int
    daily_limit_minutes: int
    daily_limit_remaining_minutes: int
    weekly_stats: dict[str, int]
    favorite_videos: list[FavoriteVideo]
    today_bonus_minutes: int = 0  # additive (CONTRACT §13): counted in the remaining minutes


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
