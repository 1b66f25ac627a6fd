"""The facts Medio records: immutable, past-tense, carrying all a projector needs.

Projections are a pure function of the event sequence, so every derived figure a projector
needs (the seconds accrued per local day, whether a title is finished) is decided when the
event is appended and stored in it, never recomputed from the clock at projection time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Common fields: when the server recorded it and who caused it (a token's ``sub``)."""

    occurred_at: datetime
    actor: str


class DayShare(msgspec.Struct, frozen=True, array_like=True):
    """Watched seconds that fall on one local calendar day of the profile."""

    local_date: str  # YYYY-MM-DD in the profile's time zone
    seconds: float


class ProgressSaved(Event, frozen=True, kw_only=True, tag="progress.saved"):
    """A player saved its resume position for a title."""

    clerk_id: str
    tmdb_id: str
    current_time: float
    duration: float | None = None
    finished: bool = False


class ProgressDeleted(Event, frozen=True, kw_only=True, tag="progress.deleted"):
    """A player removed the resume position for a title."""

    clerk_id: str
    tmdb_id: str


class SeriesProgressSaved(Event, frozen=True, kw_only=True, tag="series_progress.saved"):
    """A player saved its position in an episode: that episode becomes the series' current one."""

    clerk_id: str
    series_id: str
    tmdb_id: str  # the episode
    current_time: float
    duration: float | None = None
    finished: bool = False


class SeriesProgressDeleted(Event, frozen=True, kw_only=True, tag="series_progress.deleted"):
    """A player removed the resume point of a whole series (whichever episode was current)."""

    clerk_id: str
    series_id: str


class SessionStarted(Event, frozen=True, kw_only=True, tag="session.started"):
    """A child started watching a video on some device."""

    session_id: int
    profile_id: int
    video_id: int
    user_id: int
    timezone: str
    local_date: str
    public: bool = False
    # The profile's limit at the start (what a read of the session shows once its Redis state
    # has expired); ``None`` in events recorded before it was added.
    daily_limit_minutes: int | None = None
    # The paired device that started it (``None``: a parent's app or the public kids-mode route).
    device_id: int | None = None


class SessionHeartbeat(Event, frozen=True, kw_only=True, tag="session.heartbeat"):
    """A playing session is alive; ``shares`` is the time accrued since the previous beat."""

    session_id: int
    profile_id: int
    video_id: int
    shares: tuple[DayShare, ...] = ()
    position: float | None = None
    # The session's watched seconds including this beat (lets projectors see a first watch).
    watched_seconds: float = 0.0


# ``parent``: the parent turned kids mode off under a kids-mode session, locked the profile or
# stopped the session; ``profile_deleted``: the parent deleted the profile; ``bedtime``: a beat
# found the profile's bedtime begun. Each is decided when it happens, so replay repeats it.
EndReason = Literal["ended", "daily_limit", "timeout", "parent", "profile_deleted", "bedtime"]


class SessionEnded(Event, frozen=True, kw_only=True, tag="session.ended"):
    """A session stopped: by the player, at the daily limit, by timeout, or by its parent."""

    session_id: int
    profile_id: int
    video_id: int
    reason: EndReason
    ended_at: datetime
    started_at: datetime
    shares: tuple[DayShare, ...] = ()
    # The session's watched seconds including ``shares``, and the player's last position.
    watched_seconds: float = 0.0
    position: float | None = None
    # The profile's local day of ``ended_at`` (``None`` in events recorded before it was added).
    local_date: str | None = None


class DevicePairingStarted(Event, frozen=True, kw_only=True, tag="device.pairing_started"):
    """A device asked to be paired and shows a user code (which is not recorded)."""

    pairing_id: str
    expires_at: datetime


class DevicePaired(Event, frozen=True, kw_only=True, tag="device.paired"):
    """A parent confirmed a device's user code for one of their profiles."""

    device_id: int
    pairing_id: str
    profile_id: int
    user_id: int
    name: str


class DeviceTokenIssued(Event, frozen=True, kw_only=True, tag="device.token_issued"):
    """The paired device collected its token; only the token's SHA-256 is recorded."""

    device_id: int
    profile_id: int
    token_hash: str


class DeviceRevoked(Event, frozen=True, kw_only=True, tag="device.revoked"):
    """A parent revoked a device: its token stops working at once."""

    device_id: int
    profile_id: int
    user_id: int


ErasedScope = Literal["family", "profile"]


class SubjectErased(Event, frozen=True, kw_only=True, tag="privacy.erased"):
    """A family (an account) or one child was erased: its read models deleted and its keys
    destroyed, so its archived events can never be read again. No personal data: the record
    says that an erasure happened, not whose."""

    scope: ErasedScope
    keys: int  # privacy keys destroyed


class RetentionApplied(Event, frozen=True, kw_only=True, tag="privacy.retention_applied"):
    """Events older than ``horizon`` lost their personal data (``MEDIO_RETENTION_DAYS``)."""

    horizon: datetime
    events: int  # events shredded by this run


class StatsCarried(Event, frozen=True, kw_only=True, tag="stats.carried"):
    """What shredded sessions had added to one profile's stats, kept past the retention horizon,
    so that a replay gives the stats the parent saw. Written into the archive (never the log)
    by the retention run that shredded those sessions; the profile's personal data, sealed
    with its key like its sessions were."""

    profile_id: int
    daily: tuple[tuple[str, int], ...]  # (local date, watched ms)
    videos: tuple[tuple[int, int, int], ...]  # (video id, sessions, watched ms)
    totals: tuple[int, int, int]  # (watched ms, sessions, sessions that watched anything)


class SessionStopRequested(Event, frozen=True, kw_only=True, tag="session.stop_requested"):
    """The parent stopped one session: its next heartbeat ends it (reason ``parent``)."""

    session_id: int
    profile_id: int
    video_id: int
    local_date: str  # the profile's local day when the parent acted


# Parental policy (CONTRACT §13). ``local_date`` is the profile's local day the fact belongs to,
# decided when it was recorded, so the day's ledger is a pure function of the events.


class PolicySet(Event, frozen=True, kw_only=True, tag="profile.policy_set"):
    """A profile's policy as its parent set it (on create, and on every change of it)."""

    profile_id: int
    user_id: int
    local_date: str
    timezone: str
    daily_limit_minutes: int
    weekday_limits: dict[str, int | None]
    bedtime: dict[str, Any] | None = None  # as the parent gave it: one window or per day
    warning_minutes: int = 5
    limit_action: str = "stop"


class BonusGranted(Event, frozen=True, kw_only=True, tag="profile.bonus_granted"):
    """Extra minutes for one local day: the parent's gift or an approved time request."""

    profile_id: int
    local_date: str
    minutes: int
    total_minutes: int  # the day's bonus including these
    request_id: int | None = None


class ProfileLocked(Event, frozen=True, kw_only=True, tag="profile.locked"):
    """The parent paused watching (until ``until``, or until unlocked)."""

    profile_id: int
    local_date: str
    until: datetime | None = None


class ProfileUnlocked(Event, frozen=True, kw_only=True, tag="profile.unlocked"):
    """The parent lifted the lock."""

    profile_id: int
    local_date: str


class TimeRequested(Event, frozen=True, kw_only=True, tag="time_request.created"):
    """A child asked for more time."""

    request_id: int
    profile_id: int
    local_date: str
    minutes: int
    message: str | None = None


class TimeRequestDecided(Event, frozen=True, kw_only=True, tag="time_request.decided"):
    """The parent approved (``minutes`` granted for the request's day) or denied a request."""

    request_id: int
    profile_id: int
    local_date: str  # the request's local day (where approved minutes count)
    status: Literal["approved", "denied"]
    minutes: int = 0


AnyEvent = (
    ProgressSaved
    | ProgressDeleted
    | SeriesProgressSaved
    | SeriesProgressDeleted
    | SessionStarted
    | SessionHeartbeat
    | SessionEnded
    | DevicePairingStarted
    | DevicePaired
    | DeviceTokenIssued
    | DeviceRevoked
    | SubjectErased
    | RetentionApplied
    | StatsCarried
    | SessionStopRequested
    | PolicySet
    | BonusGranted
    | ProfileLocked
    | ProfileUnlocked
    | TimeRequested
    | TimeRequestDecided
)

EVENT_TYPES: dict[str, type[AnyEvent]] = {
    cls.__struct_config__.tag: cls for cls in get_args(AnyEvent)
}


def event_type(event: Event) -> str:
    """The wire name of an event, e.g. ``progress.saved``."""
    return type_name(type(event))


def type_name(kind: type[Event]) -> str:
    """The wire name of an event class, e.g. ``progress.saved`` for ``ProgressSaved``."""
    return str(kind.__struct_config__.tag)
