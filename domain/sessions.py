"""Watch-session rules: accrual per heartbeat, the local-day split, the daily limit, timeout.

Pure functions over a ``SessionState`` and the instant the caller read from the clock port.
Each command returns a ``Transition``: the new state and the events that record it, which the
store writes together in one atomic step. Watched time is kept in whole milliseconds so that
sums are exact and replay reproduces them bit for bit.

* A heartbeat (or an end) accrues ``min(now - previous beat (or start), max gap)``: a paused
  player that stops beating stops accruing. The accrued stretch is the one just before ``now``
  and is split at the profile's local midnights into ``DayShare`` pieces.
* The daily limit is checked on "today" in the profile's time zone: the projected total plus
  what this beat adds. Reaching it ends the session (reason ``daily_limit``).
* A session silent for the timeout is over, whoever notices first (the reaper or a late beat):
  it ends at its last heartbeat (or start) and accrues nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from domain.events import (
    AnyEvent,
    DayShare,
    EndReason,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
)
from domain.localtime import MS_PER_MINUTE as MS_PER_MINUTE
from domain.localtime import MS_PER_SECOND as MS_PER_SECOND
from domain.localtime import local_date as local_date
from domain.localtime import start_of_local_day as start_of_local_day
from domain.localtime import zone as zone
from domain.policy import (
    Cause,
    Policy,
    bedtime_until,
    budget_ms,
    ends_at,
    finish_by,
    is_locked,
    warning,
)

MAX_POSITION_SECONDS = 604_800  # a week, as for resume positions (CONTRACT §4)
MSG_POSITION = "Position must be a number of seconds between 0 and 604800"

Outcome = Literal["active", "limit_reached", "bedtime", "stopped", "ended", "already_ended"]


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """A session as the command side keeps it, next to the log."""

    session_id: int
    profile_id: int
    video_id: int
    user_id: int
    timezone: str
    daily_limit_minutes: int  # the profile's limit when the session started
    started_at: datetime
    last_active_at: datetime  # the last heartbeat, or the start
    last_heartbeat: datetime | None = None
    watched_ms: int = 0
    position: float | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    token_hash: str = ""
    public: bool = False
    # Parental policy (``domain.policy``): the video's length (for ``finish_video``), a stop
    # the parent asked for, and when a video playing past the limit must have finished.
    video_duration: int | None = None
    stop_requested: bool = False
    finish_by: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Rules:
    """``MEDIO_HEARTBEAT_MAX_GAP_SECONDS`` and ``MEDIO_SESSION_TIMEOUT_SECONDS``."""

    max_gap_seconds: float = 90
    timeout_seconds: float = 180


@dataclass(frozen=True)
class Transition:
    """What a command did: its outcome, the resulting state, the events to append."""

    outcome: Outcome
    state: SessionState
    events: tuple[AnyEvent, ...] = ()
    today_ms: int = 0  # watched today (local) after this command, as far as it knows
    budget_ms: int = 0  # what today allows in all (limit and bonus)
    ends_at: datetime | None = None  # when the session will be ended if nothing changes
    warning: Cause | None = None


# Time zones and local days (``domain.localtime``, re-exported for the session's callers) -------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms_between(start: datetime, end: datetime) -> int:
    """Whole milliseconds from ``start`` to ``end``, cut on the clock's millisecond grid.

    Flooring each stretch on its own (``(end - start) // 1 ms``) lost its sub-millisecond rest
    at every beat (about 0.5 ms each, -37 ms over 75 beats). Flooring both ends instead makes
    consecutive stretches add up to the floored span of the whole: nothing is lost.
    """
    return _epoch_ms(end) - _epoch_ms(start)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def split_by_local_day(start: datetime, end: datetime, timezone: str) -> tuple[DayShare, ...]:
    """The stretch ``[start, end)`` cut at each local midnight, as watched seconds per day."""
    shares: list[DayShare] = []
    cursor = start
    while cursor < end:
        day = local_date(cursor, timezone)
        boundary = min(end, start_of_local_day(day + timedelta(days=1), timezone))
        ms = _ms_between(cursor, boundary)
        if ms > 0:
            shares.append(DayShare(day.isoformat(), ms / MS_PER_SECOND))
        cursor = boundary
    return tuple(shares)


def share_ms(share: DayShare) -> int:
    """A share's seconds back in whole milliseconds (they were made from milliseconds)."""
    return round(share.seconds * MS_PER_SECOND)


# Limits and figures -----------------------------------------------------------------------------


def whole_minutes(ms: int) -> int:
    """Watched time as the contract counts it: whole minutes, rounded down."""
    return max(0, ms) // MS_PER_MINUTE


def remaining_minutes(limit_minutes: int, watched_today_ms: int) -> int:
    """``max(0, limit - today)`` in whole minutes, as stats report it."""
    return max(0, limit_minutes - whole_minutes(watched_today_ms))


def duration_minutes(started_at: datetime, ended_at: datetime) -> float:
    """Wall time from start to end in minutes, one decimal."""
    return round(max(0.0, (ended_at - started_at).total_seconds()) / 60, 1)


def position_problem(position: object) -> str | None:
    """Why a heartbeat's ``position`` is unacceptable, or ``None``."""
    if position is None:
        return None
    if isinstance(position, bool) or not isinstance(position, int | float):
        return MSG_POSITION
    if not math.isfinite(position) or not 0 <= position <= MAX_POSITION_SECONDS:
        return MSG_POSITION
    return None


def is_silent(state: SessionState, now: datetime, rules: Rules) -> bool:
    """An active session that has not beaten for the timeout is over."""
    return state.active and (now - state.last_active_at).total_seconds() >= rules.timeout_seconds


# Commands ---------------------------------------------------------------------------------------


def start(
    *,
    session_id: int,
    profile_id: int,
    video_id: int,
    user_id: int,
    timezone: str,
    daily_limit_minutes: int,
    now: datetime,
    token_hash: str,
    public: bool,
    actor: str,
    device_id: int | None = None,
    video_duration: int | None = None,
) -> tuple[SessionState, SessionStarted]:
    """A new session and the event recording it (the caller has checked the limit)."""
    state = SessionState(
        session_id=session_id,
        profile_id=profile_id,
        video_id=video_id,
        user_id=user_id,
        timezone=timezone,
        daily_limit_minutes=daily_limit_minutes,
        started_at=now,
        last_active_at=now,
        token_hash=token_hash,
        public=public,
        video_duration=video_duration,
    )
    event = SessionStarted(
        occurred_at=now,
        actor=actor,
        session_id=session_id,
        profile_id=profile_id,
        video_id=video_id,
        user_id=user_id,
        timezone=timezone,
        local_date=local_date(now, timezone).isoformat(),
        public=public,
        daily_limit_minutes=daily_limit_minutes,
        device_id=device_id,
    )
    return state, event


def _accrue(state: SessionState, now: datetime, rules: Rules) -> tuple[DayShare, ...]:
    gap = min(
        max(now - state.last_active_at, timedelta(0)), timedelta(seconds=rules.max_gap_seconds)
    )
    return split_by_local_day(now - gap, now, state.timezone) if gap else ()


def _advanced(state: SessionState, now: datetime, shares: tuple[DayShare, ...]) -> SessionState:
    moment = max(now, state.last_active_at)
    added = sum(share_ms(s) for s in shares)
    return msgspec.structs.replace(
        state, last_active_at=moment, last_heartbeat=moment, watched_ms=state.watched_ms + added
    )


def _today_ms(shares: tuple[DayShare, ...], today: str, projected_today_ms: int) -> int:
    return projected_today_ms + sum(share_ms(s) for s in shares if s.local_date == today)


def _ended(
    state: SessionState,
    reason: EndReason,
    ended_at: datetime,
    now: datetime,
    actor: str,
    shares: tuple[DayShare, ...] = (),
) -> tuple[SessionState, SessionEnded]:
    final = msgspec.structs.replace(state, ended_at=ended_at, end_reason=reason)
    event = SessionEnded(
        occurred_at=now,
        actor=actor,
        session_id=state.session_id,
        profile_id=state.profile_id,
        video_id=state.video_id,
        reason=reason,
        ended_at=ended_at,
        started_at=state.started_at,
        shares=shares,
        watched_seconds=final.watched_ms / MS_PER_SECOND,
        position=final.position,
        local_date=local_date(ended_at, state.timezone).isoformat(),
    )
    return final, event


def expire(state: SessionState, now: datetime, rules: Rules, actor: str) -> Transition | None:
    """End a silent session at its last heartbeat (reason ``timeout``); ``None`` if not silent."""
    if not is_silent(state, now, rules):
        return None
    final, event = _ended(state, "timeout", state.last_active_at, now, actor)
    return Transition("already_ended", final, (event,))


def policy_of_session(state: SessionState) -> Policy:
    """The policy a session falls back on when its profile has none stored: the limit and zone
    it started with."""
    return Policy(timezone=state.timezone, daily_limit_minutes=state.daily_limit_minutes)


def heartbeat(
    state: SessionState,
    now: datetime,
    rules: Rules,
    *,
    projected_today_ms: int,
    position: float | None,
    actor: str,
    policy: Policy | None = None,
) -> Transition:
    """Accrue the time since the previous beat, then apply the profile's current policy.

    In order: a stop or lock by the parent ends the session (``stopped``, reason ``parent``),
    bedtime ends it (``bedtime``), today's budget used up ends it (``limit_reached``) unless
    ``finish_video`` lets the video playing finish. Otherwise it stays ``active`` and the
    transition says when it will end (``ends_at``) and whether to warn.
    """
    if not state.active:
        return Transition("already_ended", state)
    timed_out = expire(state, now, rules, actor)
    if timed_out is not None:
        return timed_out
    rules_now = policy or policy_of_session(state)
    shares = _accrue(state, now, rules)
    beaten = _advanced(state, now, shares)
    if position is not None:
        beaten = msgspec.structs.replace(beaten, position=position)
    today = local_date(now, state.timezone)
    today_ms = _today_ms(shares, today.isoformat(), projected_today_ms)
    budget = budget_ms(rules_now, today)

    def ended(outcome: Outcome, reason: EndReason) -> Transition:
        final, event = _ended(beaten, reason, beaten.last_active_at, now, actor, shares)
        return Transition(outcome, final, (event,), today_ms, budget)

    if state.stop_requested or is_locked(rules_now, now):
        return ended("stopped", "parent")
    if bedtime_until(rules_now, now) is not None:
        return ended("bedtime", "bedtime")
    coming = ends_at(rules_now, now, today_ms)
    if today_ms >= budget:
        if rules_now.limit_action != "finish_video":
            return ended("limit_reached", "daily_limit")
        deadline = beaten.finish_by or finish_by(
            now, state.video_duration, beaten.position, beaten.watched_ms
        )
        if deadline is None or deadline <= now:
            return ended("limit_reached", "daily_limit")
        beaten = msgspec.structs.replace(beaten, finish_by=deadline)
        bedtime_first = coming is not None and coming[1] == "bedtime" and coming[0] < deadline
        coming = coming if bedtime_first else (deadline, "daily_limit")
    event = SessionHeartbeat(
        occurred_at=now,
        actor=actor,
        session_id=state.session_id,
        profile_id=state.profile_id,
        video_id=state.video_id,
        shares=shares,
        position=position,
        watched_seconds=beaten.watched_ms / MS_PER_SECOND,
    )
    return Transition(
        "active",
        beaten,
        (event,),
        today_ms,
        budget,
        coming[0] if coming else None,
        warning(rules_now, now, coming),
    )


def end(
    state: SessionState, now: datetime, rules: Rules, *, actor: str, reason: EndReason = "ended"
) -> Transition:
    """The player (or, with ``reason``, the parent) ends the session: accrue the last stretch
    like a beat, then stop."""
    if not state.active:
        return Transition("already_ended", state)
    timed_out = expire(state, now, rules, actor)
    if timed_out is not None:
        return timed_out
    shares = _accrue(state, now, rules)
    final, event = _ended(
        _advanced(state, now, shares), reason, max(now, state.last_active_at), now, actor, shares
    )
    return Transition("ended", final, (event,))


def view(state: SessionState, now: datetime, rules: Rules) -> SessionState:
    """The session as it stands at ``now``: a silent one reads as timed out before it is reaped."""
    if is_silent(state, now, rules):
        return msgspec.structs.replace(state, ended_at=state.last_active_at, end_reason="timeout")
    return state


def may_access(
    state: SessionState, user_id: int | None, token_hash: str | None, profile_id: int | None = None
) -> bool:
    """The owner's parent (bearer token), a device of the session's profile (``profile_id``),
    or the holder of the session's own token."""
    if user_id is not None and user_id == state.user_id:
        return profile_id is None or profile_id == state.profile_id
    return bool(token_hash) and token_hash == state.token_hash
