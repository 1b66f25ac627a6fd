"""Pure stats shaping: weekday naming of the last seven local days, averages."""

from __future__ import annotations

from datetime import date

from domain.stats import average_session_minutes, last_seven_days, weekly_stats


def test_last_seven_days_end_today() -> None:
    days = last_seven_days(date(2026, 3, 4))
    assert days[0] == date(2026, 2, 26) and days[-1] == date(2026, 3, 4)
    assert len(days) == 7


def test_weekly_stats_are_keyed_monday_to_sunday_in_whole_minutes() -> None:
    today = date(2026, 3, 4)  # a Wednesday
    stats = weekly_stats(
        today,
        {
            date(2026, 3, 4): 90_000,  # 1.5 min -> 1
            date(2026, 3, 2): 600_000,  # Monday -> 10
            date(2026, 2, 26): 59_999,  # last Thursday -> 0
            date(2026, 2, 25): 9_000_000,  # eight days ago: not in the week
        },
    )
    assert list(stats) == [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    assert stats == {
        "monday": 10,
        "tuesday": 0,
        "wednesday": 1,
        "thursday": 0,
        "friday": 0,
        "saturday": 0,
        "sunday": 0,
    }


def test_average_counts_only_sessions_that_watched_and_rounds_half_up() -> None:
    assert average_session_minutes(0, 0) == 0
    assert average_session_minutes(5 * 60_000, 2) == 3  # 2.5 -> 3
    assert average_session_minutes(7 * 60_000, 3) == 2  # 2.33 -> 2
