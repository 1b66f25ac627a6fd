"""Parental policy rules: a profile's limits per local day, bedtime, lock, bonus, warnings.

Pure functions over a ``Policy`` and instants read from the clock port. Every day boundary is
the profile's local calendar day in its IANA zone, so DST days last 23 or 25 hours:

* The limit of a local day is its ``weekday_limits`` entry when set, else
  ``daily_limit_minutes``; the day's bonus minutes (parent's grants, approved requests) add to it.
* A bedtime window starts on local day D at D's ``start`` and lasts until the next ``end``: the
  same day when ``end`` > ``start``, else the next day (it wraps midnight). A wall time the
  clock skips on a spring-forward night is read with the offset before the jump (01:30 in
  London on that night is 02:30 BST); a wall time that happens twice is its first occurrence.
* A lock refuses starts and ends running sessions until it is lifted or its ``until`` passes.
* ``ends_at`` is when a session watched from now without pause will be ended: the day's budget
  used up (a new local day brings its own budget), or the next bedtime; ``None`` beyond 24 h.
  ``warning`` names the cause once ``ends_at`` is within ``warning_minutes``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from domain.localtime import MS_PER_MINUTE, local_date, start_of_local_day, zone
from domain.numbers import whole_in

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
MAX_DAY_MINUTES = 1440
MAX_WARNING_MINUTES = 60
DEFAULT_WARNING_MINUTES = 5
MAX_MIN_AGE = 17
MIN_BONUS_MINUTES, MAX_BONUS_MINUTES = 1, 240
MIN_REQUEST_MINUTES, MAX_REQUEST_MINUTES = 5, 120
MAX_REQUEST_MESSAGE = 200
HORIZON = timedelta(hours=24)
KEEP_BONUS_DAYS = 3  # bonuses of older local days no longer matter to any limit

POLICY_FIELDS = ("weekday_limits", "bedtime", "warning_minutes", "limit_action")

LimitAction = Literal["stop", "finish_video"]
Cause = Literal["daily_limit", "bedtime"]

MSG_WEEKDAY_LIMITS = "weekday_limits must be an object of monday to sunday"
MSG_WEEKDAY_LIMIT = "A day's limit must be null or an integer between 0 and 1440"
MSG_UNKNOWN_DAY = "Unknown day: use monday, tuesday, wednesday, thursday, friday, saturday, sunday"
MSG_BEDTIME = 'bedtime must be null, {"start": "HH:MM", "end": "HH:MM"}, or an object of days'
MSG_WINDOW = 'A bedtime window must be {"start": "HH:MM", "end": "HH:MM"} or null'
MSG_TIME = "Time must be HH:MM between 00:00 and 23:59"
MSG_SAME_TIMES = "Bedtime start and end must differ"
MSG_WARNING = "Warning must be an integer between 0 and 60"
MSG_LIMIT_ACTION = 'limit_action must be "stop" or "finish_video"'
MSG_MIN_AGE = "Minimum age must be an integer between 0 and 17"

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

# The policy fields of a profile body as typed fields (``domain.catalog.ProfileCreate``): the
# same bounds as the checks below, said as ``Meta`` constraints for the OpenAPI document.
WarningMinutes = Annotated[int, Meta(ge=0, le=MAX_WARNING_MINUTES)]
MinAge = Annotated[int, Meta(ge=0, le=MAX_MIN_AGE)]
WeekdayLimits = dict[Weekday, Annotated[int, Meta(ge=0, le=MAX_DAY_MINUTES)] | None]
_NULL = {"type": "null"}
_WINDOW = {
    "type": "object",
    "properties": {edge: {"type": "string", "pattern": _HHMM.pattern} for edge in ("start", "end")},
    "required": ["end", "start"],
    "additionalProperties": False,
    "description": "start and end differ; a window whose end is earlier wraps midnight",
}
_BEDTIME_DAYS = {
    "type": "object",
    "properties": {day: {"oneOf": [_WINDOW, _NULL]} for day in WEEKDAYS},
    "additionalProperties": False,
}
BonusMinutes = Annotated[int, Meta(ge=MIN_BONUS_MINUTES, le=MAX_BONUS_MINUTES)]


class BonusCreate(msgspec.Struct, frozen=True, kw_only=True):
    """Extra minutes a parent gives a profile for its today."""

    minutes: BonusMinutes


class LockCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A parent pauses watching, until an instant (with its offset) or until unlocked."""

    until: Annotated[
        Annotated[str, Meta(extra_json_schema={"format": "date-time"})] | None,
        Meta(description="An instant with its offset; null or absent: until unlocked"),
    ] = None


class TimeRequestApproval(msgspec.Struct, frozen=True, kw_only=True):
    """A parent approves a request for more time, with its minutes or other ones."""

    minutes: Annotated[
        BonusMinutes | None,
        Meta(description="Minutes granted; null or absent: the minutes asked for"),
    ] = None


# One window, a window (or null) per day, or null: a union msgspec cannot type (two object
# shapes), so the field is read as JSON (``check_policy_fields`` decides) and its schema given.
Bedtime = Annotated[Any, Meta(extra_json_schema={"oneOf": [_WINDOW, _BEDTIME_DAYS, _NULL]})]


class Window(msgspec.Struct, frozen=True):
    """A bedtime window as local wall times ``HH:MM``."""

    start: str
    end: str


class Policy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the session commands check for one profile, kept next to the log.

    The first fields are the profile's settings (``profile.policy_set``); ``locked`` /
    ``lock_until`` and ``bonuses`` (local date → minutes) follow the parent's actions;
    ``pending_request`` and ``cooldown_until`` pace the child's requests for more time.
    """

    timezone: str = "UTC"
    daily_limit_minutes: int = 60
    weekday_limits: dict[str, int | None] = {}
    bedtime: dict[str, Window | None] = {}  # per weekday; every day the same when uniform
    warning_minutes: int = DEFAULT_WARNING_MINUTES
    limit_action: LimitAction = "stop"
    locked: bool = False
    lock_until: datetime | None = None
    bonuses: dict[str, int] = {}
    pending_request: int | None = None
    cooldown_until: datetime | None = None


# Validation (the ``errors`` shape: each problem is a field path and a message) -----------------


def check_policy_fields(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with the policy fields present in a profile body, as ``(path, message)``."""
    problems: list[tuple[str, str]] = []
    if "weekday_limits" in body:
        problems += _check_weekday_limits(body["weekday_limits"])
    if "bedtime" in body:
        problems += _check_bedtime(body["bedtime"])
    warning_minutes = body.get("warning_minutes")
    if "warning_minutes" in body and whole_in(warning_minutes, 0, MAX_WARNING_MINUTES) is None:
        problems.append(("warning_minutes", MSG_WARNING))
    if "limit_action" in body and body["limit_action"] not in ("stop", "finish_video"):
        problems.append(("limit_action", MSG_LIMIT_ACTION))
    return problems


def check_min_age(body: dict[str, Any]) -> list[tuple[str, str]]:
    """A video's ``min_age`` (0-17), when present."""
    if "min_age" in body and whole_in(body["min_age"], 0, MAX_MIN_AGE) is None:
        return [("min_age", MSG_MIN_AGE)]
    return []


def _check_weekday_limits(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [("weekday_limits", MSG_WEEKDAY_LIMITS)]
    problems = []
    for day, minutes in value.items():
        if day not in WEEKDAYS:
            problems.append((f"weekday_limits.{day}"[:80], MSG_UNKNOWN_DAY))
        elif minutes is not None and whole_in(minutes, 0, MAX_DAY_MINUTES) is None:
            problems.append((f"weekday_limits.{day}", MSG_WEEKDAY_LIMIT))
    return problems


def _check_bedtime(value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [("bedtime", MSG_BEDTIME)]
    if "start" in value or "end" in value:
        return _check_window("bedtime", value)
    problems = []
    for day, window in value.items():
        if day not in WEEKDAYS:
            problems.append((f"bedtime.{day}"[:80], MSG_UNKNOWN_DAY))
        elif window is not None:
            problems += _check_window(f"bedtime.{day}", window)
    return problems


def _check_window(path: str, window: object) -> list[tuple[str, str]]:
    if not isinstance(window, dict) or set(window) != {"start", "end"}:
        return [(path, MSG_WINDOW)]
    problems = [
        (f"{path}.{edge}", MSG_TIME)
        for edge in ("start", "end")
        if not isinstance(window[edge], str) or not _HHMM.match(window[edge])
    ]
    if not problems and window["start"] == window["end"]:
        problems.append((path, MSG_SAME_TIMES))
    return problems


def weekday_limits_value(value: dict[str, Any] | None) -> dict[str, int | None]:
    """A valid ``weekday_limits`` body value as stored: every day named, ``None`` when unset."""
    given = value or {}
    return {day: whole_in(given.get(day), 0, MAX_DAY_MINUTES) for day in WEEKDAYS}


def bedtime_windows(value: dict[str, Any] | None) -> dict[str, Window | None]:
    """A valid ``bedtime`` body value (null, one window, or per day) as windows per weekday."""
    if not value:
        return {}
    if "start" in value:
        window = Window(value["start"], value["end"])
        return dict.fromkeys(WEEKDAYS, window)
    return {
        day: Window(w["start"], w["end"]) if (w := value.get(day)) else None for day in WEEKDAYS
    }


# The limit of a local day -----------------------------------------------------------------------


def weekday(day: date) -> str:
    return WEEKDAYS[day.weekday()]


def day_limit_minutes(policy: Policy, day: date) -> int:
    """The day's own limit: its weekday entry when set, else the default."""
    entry = policy.weekday_limits.get(weekday(day))
    return policy.daily_limit_minutes if entry is None else entry


def bonus_minutes(policy: Policy, day: date) -> int:
    return policy.bonuses.get(day.isoformat(), 0)


def budget_ms(policy: Policy, day: date) -> int:
    """What the day allows in all: its limit plus its bonus."""
    found = _DAYS.get((id(policy), day))
    if found is None or found[0] is not policy:
        found = _day_of(policy, day)
    return found[1]


def _budget_ms(policy: Policy, day: date) -> int:
    return (day_limit_minutes(policy, day) + bonus_minutes(policy, day)) * MS_PER_MINUTE


# What a policy makes of one local day (its budget, the bedtime window starting on it), kept
# per policy object: a heartbeat asks for the same few days of its profile's policy each time
# (budgets in ``limit_end``, windows in ``bedtime_until`` and ``next_bedtime``), and a service
# that hands the same ``Policy`` object to every beat while the stored policy is unchanged
# (``services.policy.stored_policy``) then pays for each day once. Keyed by the object's
# ``id``; the entry holds the object, so the id cannot name another policy while it is kept.
# A ``Policy`` is frozen and nothing changes its dicts in place (``with_bonus`` makes new ones).
_DAYS: dict[tuple[int, date], tuple[Policy, int, tuple[datetime, datetime] | None]] = {}
_DAYS_KEPT = 8192


def _day_of(policy: Policy, day: date) -> tuple[Policy, int, tuple[datetime, datetime] | None]:
    if len(_DAYS) >= _DAYS_KEPT:
        _DAYS.clear()
    found = (policy, _budget_ms(policy, day), _window_of(policy, day))
    _DAYS[(id(policy), day)] = found
    return found


def with_bonus(policy: Policy, day: date, minutes: int) -> Policy:
    """``policy`` with ``minutes`` more for ``day``; bonuses of days long past are dropped."""
    oldest = (day - timedelta(days=KEEP_BONUS_DAYS)).isoformat()
    bonuses = {d: m for d, m in policy.bonuses.items() if d >= oldest}
    bonuses[day.isoformat()] = bonuses.get(day.isoformat(), 0) + minutes
    return msgspec.structs.replace(policy, bonuses=bonuses)


# Lock and bedtime -------------------------------------------------------------------------------


def is_locked(policy: Policy, now: datetime) -> bool:
    return policy.locked and (policy.lock_until is None or now < policy.lock_until)


@lru_cache(maxsize=4096)
def _at(day: date, hhmm: str, timezone: str) -> datetime:
    """Local wall time ``hhmm`` on ``day`` as a UTC instant (see the module on DST).

    Cached: every heartbeat of a profile with a bedtime asks for the same few instants (each
    window of yesterday, today and the next two days), and each costs a zone conversion.
    """
    hours, minutes = int(hhmm[:2]), int(hhmm[3:])
    return datetime.combine(day, time(hours, minutes), tzinfo=zone(timezone)).astimezone(UTC)


def window_of(policy: Policy, day: date) -> tuple[datetime, datetime] | None:
    """The bedtime window that starts on local ``day`` as UTC ``[start, end)``, if any."""
    found = _DAYS.get((id(policy), day))
    if found is None or found[0] is not policy:
        found = _day_of(policy, day)
    return found[2]


Span = tuple[datetime, datetime]
# The windows of the days around a local day (yesterday, that day, the next two), kept like
# ``_DAYS``: every beat asks ``bedtime_until`` and ``next_bedtime`` about the same four days.
_NEAR: dict[tuple[int, date], tuple[Policy, tuple[Span | None, ...]]] = {}


def _windows_near(policy: Policy, day: date) -> tuple[Span | None, ...]:
    """The bedtime windows starting on ``day`` - 1 to ``day`` + 2, in that order."""
    found = _NEAR.get((id(policy), day))
    if found is None or found[0] is not policy:
        if len(_NEAR) >= _DAYS_KEPT:
            _NEAR.clear()
        days = (day + timedelta(days=offset) for offset in range(-1, 3))
        found = _NEAR[(id(policy), day)] = (policy, tuple(window_of(policy, d) for d in days))
    return found[1]


def _window_of(policy: Policy, day: date) -> tuple[datetime, datetime] | None:
    window = policy.bedtime.get(weekday(day))
    if window is None:
        return None
    end_day = day if window.end > window.start else day + timedelta(days=1)
    return _at(day, window.start, policy.timezone), _at(end_day, window.end, policy.timezone)


def bedtime_until(policy: Policy, now: datetime) -> datetime | None:
    """When bedtime covering ``now`` ends (chained windows followed), or ``None`` if none does."""
    if not policy.bedtime:
        return None
    until: datetime | None = None
    moment = now
    for _ in range(len(WEEKDAYS) + 1):
        yesterday_and_today = _windows_near(policy, local_date(moment, policy.timezone))[:2]
        covering = [span[1] for span in yesterday_and_today if span and span[0] <= moment < span[1]]
        if not covering:
            break
        until = moment = max(covering)
    return until


def next_bedtime(policy: Policy, now: datetime) -> datetime | None:
    """The start of the next bedtime window after ``now`` within the horizon."""
    if not policy.bedtime:
        return None
    today_and_next_two = _windows_near(policy, local_date(now, policy.timezone))[1:]
    starts = [span[0] for span in today_and_next_two if span and span[0] > now]
    return min(starts) if starts else None


# When a session will end, and the warning ------------------------------------------------------


def limit_end(policy: Policy, now: datetime, today_ms: int) -> datetime | None:
    """When continuous watching from ``now`` uses up the budget (``today_ms`` watched today).

    At the next local midnight the following day's budget starts; ``None`` past the horizon.
    """
    day = local_date(now, policy.timezone)
    cursor, used = now, today_ms
    while cursor - now <= HORIZON:
        left = budget_ms(policy, day) - used
        if left <= 0:
            return cursor
        midnight = start_of_local_day(day + timedelta(days=1), policy.timezone)
        end = cursor + timedelta(milliseconds=left)
        if end < midnight:
            return end if end - now <= HORIZON else None
        cursor, used, day = midnight, 0, day + timedelta(days=1)
    return None


def ends_at(policy: Policy, now: datetime, today_ms: int) -> tuple[datetime, Cause] | None:
    """When and why a session playing from ``now`` will be ended, within 24 hours."""
    found: list[tuple[datetime, Cause]] = []
    if (by_limit := limit_end(policy, now, today_ms)) is not None:
        found.append((by_limit, "daily_limit"))
    by_bedtime = next_bedtime(policy, now)
    if by_bedtime is not None and by_bedtime - now <= HORIZON:
        found.append((by_bedtime, "bedtime"))
    return min(found, key=lambda item: item[0]) if found else None


def warning(policy: Policy, now: datetime, end: tuple[datetime, Cause] | None) -> Cause | None:
    """The cause of the coming end once it is within ``warning_minutes``."""
    if end is None or end[0] - now > timedelta(minutes=policy.warning_minutes):
        return None
    return end[1]


def finish_by(
    now: datetime, video_duration: int | None, position: float | None, watched_ms: int
) -> datetime | None:
    """With ``limit_action: finish_video``: when the video playing at the limit will end.

    The player's last ``position`` (else the session's watched time) is taken as how far in it
    is; a video without a ``duration`` cannot be finished, so it stops at the limit (``None``).
    """
    if video_duration is None:
        return None
    done = position if position is not None else watched_ms / 1000
    left = max(0.0, video_duration - done)
    return now + timedelta(seconds=left) if left > 0 else None


# Start refusals ---------------------------------------------------------------------------------


class Refusal(msgspec.Struct, frozen=True):
    """Why a start is refused (the ``reason`` of the 403 body) and when it may be tried again."""

    reason: Literal["age_rating", "locked", "bedtime", "daily_limit"]
    allowed_at: datetime | None = None


def start_refusal(
    policy: Policy, now: datetime, today_ms: int, *, age: int, min_age: int
) -> Refusal | None:
    """Whether a new session may start now: age rating, lock, bedtime, then the day's budget."""
    if min_age > age:
        return Refusal("age_rating")
    if is_locked(policy, now):
        return Refusal("locked", policy.lock_until)
    if (until := bedtime_until(policy, now)) is not None:
        return Refusal("bedtime", until)
    if today_ms >= budget_ms(policy, local_date(now, policy.timezone)):
        return Refusal("daily_limit")
    return None
