"""Parental policy rules over plain data: day limits, bedtime windows, DST days, ends_at."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec

from domain.policy import (
    Policy,
    Refusal,
    bedtime_until,
    bedtime_windows,
    budget_ms,
    check_min_age,
    check_policy_fields,
    day_limit_minutes,
    ends_at,
    finish_by,
    limit_end,
    next_bedtime,
    start_refusal,
    warning,
    weekday_limits_value,
    window_of,
    with_bonus,
)

MIN = 60_000


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def policy(**fields: object) -> Policy:
    return msgspec.convert(fields, Policy)


# Validation -------------------------------------------------------------------------------------


def test_valid_policy_fields_pass() -> None:
    body = {
        "weekday_limits": {"monday": 30, "sunday": None, "friday": 90.0},
        "bedtime": {"start": "20:30", "end": "07:00"},
        "warning_minutes": 10,
        "limit_action": "finish_video",
    }
    assert check_policy_fields(body) == []
    assert check_policy_fields({"bedtime": {"monday": {"start": "21:00", "end": "06:00"}}}) == []
    assert check_policy_fields({"bedtime": None, "weekday_limits": None}) == []


def test_each_bad_policy_field_is_named() -> None:
    problems = check_policy_fields(
        {
            "weekday_limits": {"funday": 3, "monday": 1441, "tuesday": True},
            "bedtime": {"start": "24:00", "end": "7:00"},
            "warning_minutes": 61,
            "limit_action": "pause",
        }
    )
    paths = [path for path, _msg in problems]
    assert paths == [
        "weekday_limits.funday",
        "weekday_limits.monday",
        "weekday_limits.tuesday",
        "bedtime.start",
        "bedtime.end",
        "warning_minutes",
        "limit_action",
    ]
    assert check_policy_fields({"bedtime": {"start": "21:00", "end": "21:00"}}) == [
        ("bedtime", "Bedtime start and end must differ")
    ]
    assert check_policy_fields({"bedtime": [1]})[0][0] == "bedtime"
    assert check_policy_fields({"bedtime": {"monday": {"start": "21:00"}}})[0][0] == (
        "bedtime.monday"
    )
    assert check_min_age({"min_age": 18}) == [
        ("min_age", "Minimum age must be an integer between 0 and 17")
    ]
    assert check_min_age({"min_age": 12}) == []


def test_stored_forms() -> None:
    assert weekday_limits_value({"monday": 0})["monday"] == 0
    assert weekday_limits_value(None)["sunday"] is None
    uniform = bedtime_windows({"start": "20:00", "end": "07:00"})
    assert len(uniform) == 7 and uniform["friday"] is not None
    per_day = bedtime_windows({"friday": {"start": "22:00", "end": "08:00"}})
    assert per_day["friday"] is not None and per_day["monday"] is None


# The limit of a local day -----------------------------------------------------------------------


def test_weekday_entry_then_default_then_bonus() -> None:
    rules = policy(daily_limit_minutes=60, weekday_limits={"saturday": 120, "sunday": 0})
    saturday, sunday, monday = date(2025, 3, 29), date(2025, 3, 30), date(2025, 3, 31)
    assert day_limit_minutes(rules, saturday) == 120
    assert day_limit_minutes(rules, sunday) == 0
    assert day_limit_minutes(rules, monday) == 60
    given = with_bonus(with_bonus(rules, sunday, 15), sunday, 10)
    assert budget_ms(given, sunday) == 25 * MIN
    assert budget_ms(given, monday) == 60 * MIN
    # Old bonuses are dropped as new ones arrive.
    later = with_bonus(given, sunday + timedelta(days=10), 5)
    assert sunday.isoformat() not in later.bonuses


def test_each_policy_object_answers_for_itself() -> None:
    # Days are worked out once per policy object: a changed policy (a new object) is never
    # answered from what an earlier one made of the same day.
    sunday = date(2025, 3, 30)
    rules = policy(
        daily_limit_minutes=60, bedtime=bedtime_windows({"start": "21:00", "end": "07:00"})
    )
    assert budget_ms(rules, sunday) == 60 * MIN
    assert window_of(rules, sunday) == (utc("2025-03-30T21:00"), utc("2025-03-31T07:00"))
    given = with_bonus(rules, sunday, 15)
    assert budget_ms(given, sunday) == 75 * MIN
    assert budget_ms(rules, sunday) == 60 * MIN
    later = msgspec.structs.replace(
        rules, bedtime=bedtime_windows({"start": "20:00", "end": "06:00"})
    )
    assert window_of(later, sunday) == (utc("2025-03-30T20:00"), utc("2025-03-31T06:00"))
    for minutes in range(1, 50):  # policies made and dropped: none is answered for another
        assert budget_ms(policy(daily_limit_minutes=minutes), sunday) == minutes * MIN


# Bedtime windows --------------------------------------------------------------------------------


def test_window_wrapping_midnight() -> None:
    rules = policy(timezone="UTC", bedtime=bedtime_windows({"start": "21:00", "end": "07:00"}))
    assert window_of(rules, date(2025, 6, 2)) == (utc("2025-06-02T21:00"), utc("2025-06-03T07:00"))
    # 23:30 and 03:00 are in the window that began the evening before; 12:00 is not.
    assert bedtime_until(rules, utc("2025-06-02T23:30")) == utc("2025-06-03T07:00")
    assert bedtime_until(rules, utc("2025-06-03T03:00")) == utc("2025-06-03T07:00")
    assert bedtime_until(rules, utc("2025-06-03T07:00")) is None
    assert bedtime_until(rules, utc("2025-06-03T12:00")) is None
    assert next_bedtime(rules, utc("2025-06-03T12:00")) == utc("2025-06-03T21:00")


def test_per_day_window_only_on_its_day() -> None:
    # Friday 2025-06-06 only: 22:00-01:00 (wraps into Saturday).
    rules = policy(bedtime=bedtime_windows({"friday": {"start": "22:00", "end": "01:00"}}))
    assert bedtime_until(rules, utc("2025-06-07T00:30")) == utc("2025-06-07T01:00")
    assert bedtime_until(rules, utc("2025-06-07T23:00")) is None  # Saturday has no window
    assert next_bedtime(rules, utc("2025-06-07T02:00")) is None  # next Friday is days away


def test_london_spring_forward_23_hour_day() -> None:
    # Sunday 2025-03-30, Europe/London: 01:00 GMT jumps to 02:00 BST (a 23-hour day).
    rules = policy(
        timezone="Europe/London", bedtime=bedtime_windows({"start": "20:00", "end": "07:00"})
    )
    # Saturday's window: 20:00 GMT = 20:00Z, to Sunday 07:00 BST = 06:00Z (10 h long, not 11).
    start, end = window_of(rules, date(2025, 3, 29)) or (None, None)
    assert (start, end) == (utc("2025-03-29T20:00"), utc("2025-03-30T06:00"))
    assert bedtime_until(rules, utc("2025-03-30T01:30")) == utc("2025-03-30T06:00")
    # Sunday evening 20:00 BST is 19:00Z.
    assert next_bedtime(rules, utc("2025-03-30T12:00")) == utc("2025-03-30T19:00")
    # The day itself: local midnight 00:00Z to Monday's 23:00Z, so 23 hours of budget room.
    no_limit = policy(timezone="Europe/London", daily_limit_minutes=1440)
    # 1440 minutes from Sunday 00:00 local cannot fit the 23-hour day: the day ends first and
    # Monday's budget starts at 23:00Z; the whole of it lies past the 24-hour horizon.
    assert limit_end(no_limit, utc("2025-03-30T00:00"), 0) is None


def test_london_skipped_wall_time_is_read_after_the_jump() -> None:
    rules = policy(
        timezone="Europe/London", bedtime=bedtime_windows({"start": "01:30", "end": "03:00"})
    )
    # 01:30 does not exist on 2025-03-30: read with the GMT offset it is 01:30Z (= 02:30 BST).
    assert window_of(rules, date(2025, 3, 30)) == (
        utc("2025-03-30T01:30"),
        utc("2025-03-30T02:00"),
    )


def test_los_angeles_fall_back_25_hour_day() -> None:
    # Sunday 2025-11-02, America/Los_Angeles: 02:00 PDT falls back to 01:00 PST (25 hours).
    rules = policy(
        timezone="America/Los_Angeles",
        bedtime=bedtime_windows({"start": "21:00", "end": "06:30"}),
    )
    # Saturday's window: 21:00 PDT = 04:00Z Sun, to Sunday 06:30 PST = 14:30Z: 10.5 h long.
    assert window_of(rules, date(2025, 11, 1)) == (
        utc("2025-11-02T04:00"),
        utc("2025-11-02T14:30"),
    )
    # Sunday 01:30 happens twice; either instant is inside the window.
    assert bedtime_until(rules, utc("2025-11-02T08:30")) == utc("2025-11-02T14:30")  # PDT one
    assert bedtime_until(rules, utc("2025-11-02T09:30")) == utc("2025-11-02T14:30")  # PST one
    # Sunday 23:30 PST is 07:30Z Monday; local midnight is 08:00Z (PST, -8 h). With 60 of 90
    # minutes watched, the 30 left run exactly to midnight; Monday brings its own 90 minutes,
    # so continuous watching ends at 09:30Z; with Monday's entry 0 it ends at midnight.
    limited = policy(timezone="America/Los_Angeles", daily_limit_minutes=90)
    assert limit_end(limited, utc("2025-11-03T07:30"), 60 * MIN) == utc("2025-11-03T09:30")
    zero_monday = policy(
        timezone="America/Los_Angeles", daily_limit_minutes=90, weekday_limits={"monday": 0}
    )
    assert limit_end(zero_monday, utc("2025-11-03T07:30"), 60 * MIN) == utc("2025-11-03T08:00")
    # With 80 watched, 10 minutes left end before midnight: 07:40Z.
    assert limit_end(limited, utc("2025-11-03T07:30"), 80 * MIN) == utc("2025-11-03T07:40")


# ends_at, warning, finish_video -----------------------------------------------------------------


def test_ends_at_the_sooner_of_limit_and_bedtime() -> None:
    rules = policy(
        daily_limit_minutes=60,
        warning_minutes=5,
        bedtime=bedtime_windows({"start": "20:00", "end": "07:00"}),
    )
    now = utc("2025-06-02T19:30")
    # 20 minutes left of the day's budget: the limit comes first.
    end = ends_at(rules, now, 40 * MIN)
    assert end == (utc("2025-06-02T19:50"), "daily_limit")
    assert warning(rules, now, end) is None
    assert warning(rules, utc("2025-06-02T19:46"), end) == "daily_limit"
    # 50 minutes left: bedtime at 20:00 comes first, and warns from 19:55.
    end = ends_at(rules, now, 10 * MIN)
    assert end == (utc("2025-06-02T20:00"), "bedtime")
    assert warning(rules, utc("2025-06-02T19:55"), end) == "bedtime"
    assert ends_at(policy(daily_limit_minutes=1440), now, 0) is None


def test_finish_video() -> None:
    now = utc("2025-06-02T10:00")
    assert finish_by(now, 600, 540.0, 0) == now + timedelta(seconds=60)
    assert finish_by(now, 600, None, 500_000) == now + timedelta(seconds=100)
    assert finish_by(now, None, 10.0, 0) is None
    assert finish_by(now, 600, 600.0, 0) is None


def test_start_refusals_in_order() -> None:
    now = utc("2025-06-02T21:30")
    rules = policy(
        daily_limit_minutes=0, bedtime=bedtime_windows({"start": "21:00", "end": "07:00"})
    )
    assert start_refusal(rules, now, 0, age=6, min_age=10) == Refusal("age_rating")
    locked = msgspec.structs.replace(rules, locked=True, lock_until=utc("2025-06-02T22:00"))
    assert start_refusal(locked, now, 0, age=6, min_age=0) == Refusal(
        "locked", utc("2025-06-02T22:00")
    )
    assert start_refusal(rules, now, 0, age=6, min_age=0) == Refusal(
        "bedtime", utc("2025-06-03T07:00")
    )
    assert start_refusal(rules, utc("2025-06-03T12:00"), 0, age=6, min_age=0) == Refusal(
        "daily_limit"
    )
    open_day = with_bonus(rules, date(2025, 6, 3), 10)
    assert start_refusal(open_day, utc("2025-06-03T12:00"), 0, age=6, min_age=0) is None
    # A lock whose time has passed refuses nothing.
    assert start_refusal(locked, utc("2025-06-03T12:00"), 0, age=6, min_age=0) == Refusal(
        "daily_limit"
    )
