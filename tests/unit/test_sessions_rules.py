"""Pure watch-session rules: accrual, local-day split, limit, timeout, access."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from domain import sessions
from domain.events import DayShare, SessionEnded, SessionHeartbeat, SessionStarted
from domain.policy import Policy, budget_ms
from domain.sessions import Rules, SessionState

TOKYO = "Asia/Tokyo"  # UTC+9, no DST
NEW_YORK = "America/New_York"
RULES = Rules(max_gap_seconds=90, timeout_seconds=180)
PATIENT = Rules(max_gap_seconds=90, timeout_seconds=900)  # a ten-minute pause is not a timeout


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def start(
    now: datetime, timezone: str = TOKYO, limit: int = 60, public: bool = False
) -> tuple[SessionState, SessionStarted]:
    """A parent's session (or with ``public``, a kids-mode one) of profile 7 on video 3."""
    return sessions.start(
        session_id=1,
        profile_id=7,
        video_id=3,
        user_id=2,
        timezone=timezone,
        daily_limit_minutes=limit,
        now=now,
        token_hash="" if public else "h",
        public=public,
        actor="kids-mode" if public else "parent",
    )


def started(now: datetime, timezone: str = TOKYO, limit: int = 60) -> SessionState:
    return start(now, timezone, limit)[0]


def beat(
    state: SessionState, now: datetime, projected: int = 0, rules: Rules = RULES
) -> sessions.Transition:
    return sessions.heartbeat(
        state, now, rules, projected_today_ms=projected, position=None, actor="player"
    )


def test_start_records_the_local_date_of_the_profile() -> None:
    # 16:00 UTC is 01:00 the next day in Tokyo.
    _state, event = start(at("2026-03-01T16:00:00"), public=True)
    assert event.local_date == "2026-03-02"
    assert event.public is True


def test_heartbeat_accrues_time_since_start() -> None:
    t0 = at("2026-03-01T01:00:00")
    result = beat(started(t0), t0 + timedelta(seconds=45))
    assert result.outcome == "active"
    assert result.state.watched_ms == 45_000
    (event,) = result.events
    assert isinstance(event, SessionHeartbeat)
    assert event.shares == (DayShare("2026-03-01", 45.0),)
    assert event.watched_seconds == 45.0


def test_paused_player_accrues_at_most_the_max_gap() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = beat(started(t0), t0 + timedelta(seconds=30)).state
    result = beat(state, t0 + timedelta(seconds=30 + 600), rules=PATIENT)
    assert result.state.watched_ms == 30_000 + 90_000


def test_time_across_local_midnight_is_split_between_the_days() -> None:
    # Tokyo midnight of 2026-03-02 is 15:00 UTC on 2026-03-01.
    t0 = at("2026-03-01T14:59:20")
    result = beat(started(t0), at("2026-03-01T15:00:30"))
    (event,) = result.events
    assert isinstance(event, SessionHeartbeat)
    assert event.shares == (DayShare("2026-03-01", 40.0), DayShare("2026-03-02", 30.0))


def test_split_follows_daylight_saving_midnight_in_new_york() -> None:
    # 2026-03-08 starts DST at 02:00 local; midnight of 03-09 is 04:00 UTC (EDT, UTC-4).
    shares = sessions.split_by_local_day(
        at("2026-03-09T03:59:00"), at("2026-03-09T04:01:00"), NEW_YORK
    )
    assert shares == (DayShare("2026-03-08", 60.0), DayShare("2026-03-09", 60.0))


def test_a_beat_older_than_the_last_one_adds_nothing() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = beat(started(t0), t0 + timedelta(seconds=60)).state
    result = beat(state, t0 + timedelta(seconds=50))
    assert result.state.watched_ms == 60_000
    assert result.state.last_heartbeat == t0 + timedelta(seconds=60)


def test_reaching_the_limit_ends_the_session_with_daily_limit() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = started(t0, limit=10)
    projected = 9 * 60_000 + 30_000  # 9.5 minutes already counted on other devices
    result = beat(state, t0 + timedelta(seconds=30), projected)
    assert result.outcome == "limit_reached"
    assert result.state.end_reason == "daily_limit"
    assert result.today_ms == 10 * 60_000
    (event,) = result.events
    assert isinstance(event, SessionEnded)
    assert event.reason == "daily_limit"
    assert event.shares == (DayShare("2026-03-01", 30.0),)


def test_only_todays_share_counts_towards_the_limit() -> None:
    t0 = at("2026-03-01T14:59:00")  # 23:59 in Tokyo
    state = started(t0, limit=1)
    result = beat(state, at("2026-03-01T15:00:30"), projected=0)
    assert result.outcome == "active"
    assert result.today_ms == 30_000


def test_heartbeat_on_an_ended_session_changes_nothing() -> None:
    t0 = at("2026-03-01T01:00:00")
    ended = sessions.end(started(t0), t0 + timedelta(seconds=10), RULES, actor="p").state
    result = beat(ended, t0 + timedelta(seconds=20))
    assert result.outcome == "already_ended"
    assert result.events == ()


def test_end_accrues_the_last_stretch_and_reports_wall_time() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = beat(started(t0), t0 + timedelta(seconds=60)).state
    result = sessions.end(state, t0 + timedelta(seconds=930), PATIENT, actor="p")
    assert result.outcome == "ended"
    assert result.state.watched_ms == 60_000 + 90_000
    assert result.state.ended_at == t0 + timedelta(seconds=930)
    assert sessions.duration_minutes(t0, result.state.ended_at) == 15.5


def test_silent_session_times_out_at_its_last_heartbeat() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = beat(started(t0), t0 + timedelta(seconds=60)).state
    assert sessions.expire(state, t0 + timedelta(seconds=200), RULES, "reaper") is None
    result = sessions.expire(state, t0 + timedelta(seconds=240), RULES, "reaper")
    assert result is not None
    assert result.state.ended_at == t0 + timedelta(seconds=60)
    (event,) = result.events
    assert isinstance(event, SessionEnded)
    assert (event.reason, event.shares, event.watched_seconds) == ("timeout", (), 60.0)


def test_late_heartbeat_on_a_silent_session_ends_it_by_timeout_without_accruing() -> None:
    t0 = at("2026-03-01T01:00:00")
    result = beat(started(t0), t0 + timedelta(seconds=500))
    assert result.outcome == "already_ended"
    assert result.state.end_reason == "timeout"
    assert result.state.ended_at == t0
    assert result.state.watched_ms == 0


def test_view_shows_an_unreaped_silent_session_as_timed_out() -> None:
    t0 = at("2026-03-01T01:00:00")
    state = started(t0)
    assert sessions.view(state, t0 + timedelta(seconds=100), RULES).active
    shown = sessions.view(state, t0 + timedelta(seconds=180), RULES)
    assert (shown.end_reason, shown.ended_at) == ("timeout", t0)


@pytest.mark.parametrize(
    ("limit", "watched_ms", "reached", "remaining"),
    [(60, 0, False, 60), (60, 59 * 60_000 + 59_999, False, 1), (60, 3_600_000, True, 0),
     (60, 65 * 60_000, True, 0), (0, 0, True, 0)],
)  # fmt: skip
def test_limit_and_remaining_minutes(
    limit: int, watched_ms: int, reached: bool, remaining: int
) -> None:
    day = date(2026, 3, 2)
    budget = budget_ms(Policy(daily_limit_minutes=limit), day)
    assert (watched_ms >= budget) is reached
    assert sessions.remaining_minutes(limit, watched_ms) == remaining


@pytest.mark.parametrize("position", [-1, float("nan"), float("inf"), 604_801, "12", True])
def test_bad_positions_are_refused(position: object) -> None:
    assert sessions.position_problem(position) == sessions.MSG_POSITION


def test_good_positions_are_accepted() -> None:
    assert sessions.position_problem(None) is None
    assert sessions.position_problem(0) is None
    assert sessions.position_problem(123.5) is None


def test_access_is_the_owner_or_the_session_token() -> None:
    state = started(at("2026-03-01T01:00:00"))
    assert sessions.may_access(state, 2, None)
    assert sessions.may_access(state, None, "h")
    assert not sessions.may_access(state, 3, None)
    assert not sessions.may_access(state, None, "other")
    assert not sessions.may_access(state, None, "")
    assert not sessions.may_access(msgspec.structs.replace(state, token_hash=""), None, "")


def test_local_date_uses_the_profiles_zone() -> None:
    moment = at("2026-03-01T23:30:00")
    assert sessions.local_date(moment, TOKYO) == date(2026, 3, 2)
    assert sessions.local_date(moment, NEW_YORK) == date(2026, 3, 1)
    assert sessions.local_date(moment, "Not/AZone") == date(2026, 3, 1)


def test_75_beats_lose_no_watch_time_to_rounding() -> None:
    """Each beat floored its own stretch to whole milliseconds, so sub-millisecond remainders
    were lost every time: about 0.5 ms a beat, -37 ms over 75 (issue 15, L16). Stretches are
    now cut on the millisecond grid of the clock, so what they add up to is the whole time."""
    start = at("2026-03-01T10:00:00.000400")
    state = started(start)
    now = start
    for _ in range(75):
        now += timedelta(seconds=30, microseconds=600)
        state = beat(state, now).state
    elapsed_ms = (now - start) / timedelta(milliseconds=1)  # 75 x 30000.6 = 2250045
    assert abs(state.watched_ms - elapsed_ms) < 1
