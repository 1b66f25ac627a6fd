"""Watch sessions on the command side: state in Redis next to the log, changed with each event.

Every command runs through ``EventLog.decide``: the session's state key (and today's
daily-limit counter) are watched, the pure rule in ``domain.sessions`` decides on what was
read, and the new state, the active-session index and the events are written in one ``MULTI``.
Two heartbeats racing on one session therefore never both count the same seconds: the loser
re-reads the winner's beat and accrues only what is left.

Keys:

* ``medio:session:{id}``: the session's ``SessionState`` (JSON), kept for ``STATE_TTL_SECONDS``
* ``medio:sessions:active``: active session ids scored by their last heartbeat (epoch seconds),
  which the reaper reads to end silent ones
* ``medio:sessions:profile:{profile_id}``: the profile's running sessions scored by their start,
  so a parent's action (kids mode off, the profile deleted) can end them
* ``medio:sessions:seq``: the session id sequence (moved past the archive after a Redis
  restart, ``projections.recovery``)

The daily-limit counter is the ``projections.daily_limit`` projection: exact up to the
projection lag (see docs/api.md, "Daily limit across devices").
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from adapters.container import Container
from adapters.eventlog import Decision
from adapters.scripts import Script
from adapters.session_keys import (
    ACTIVE_INDEX,
    SEQUENCE_KEY,
    STATE_TTL_SECONDS,
    profile_index,
    session_key,
)
from domain import sessions
from domain.catalog import Profile
from domain.events import EndReason, SessionStarted
from domain.sessions import Rules, SessionState, Transition
from projections.daily_limit import counter_key
from projections.sessions import SessionsProjection
from services.idempotency import Receipt, decide_once

SESSION_TOKEN_PREFIX = "sess_"
ROUTE_CACHE_SIZE = 100_000

R = TypeVar("R")
# A script, not a plain INCR, so that the first id handed out after a Redis restart waits for
# the check against the archive (``gated``): a sequence that lost its last second is moved
# past every archived session first (projections.recovery).
NEXT_SESSION_ID = Script("return redis.call('INCR', KEYS[1])", gated=True)
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SessionState)


class SessionNotFound(LookupError):
    """No such session, or not the caller's."""


class SessionOver(RuntimeError):
    """The session has ended (by the player, the daily limit, or timeout)."""


class DailyLimitExceeded(Exception):
    """Today's watched time already reaches the profile's limit."""

    def __init__(self, profile: Profile, watched_ms: int) -> None:
        super().__init__("Daily watch limit exceeded")
        self.limit_minutes = profile.daily_limit_minutes
        self.watched_minutes = sessions.whole_minutes(watched_ms)
        self.profile_name = profile.name


@dataclass(frozen=True)
class Caller:
    """Who acts on a session: a parent (user id), a paired device (its parent's user id and its
    one profile), or a holder of the session's token."""

    user_id: int | None = None
    token_hash: str | None = None
    actor: str = "anonymous"
    profile_id: int | None = None  # a device's: only that profile's sessions

    def may_access(self, state: SessionState) -> bool:
        return sessions.may_access(state, self.user_id, self.token_hash, self.profile_id)


@dataclass(frozen=True)
class Started:
    """A new session, its token (shown once) and the day's figures at its start."""

    state: SessionState
    session_token: str
    watched_today_ms: int

    @property
    def remaining_minutes(self) -> int:
        return sessions.remaining_minutes(self.state.daily_limit_minutes, self.watched_today_ms)


@dataclass(frozen=True)
class Beat:
    """A heartbeat's outcome (``active`` or ``limit_reached``) and today's figure after it."""

    status: str
    state: SessionState
    today_ms: int

    @property
    def remaining_minutes(self) -> int:
        return sessions.remaining_minutes(self.state.daily_limit_minutes, self.today_ms)


def new_session_token() -> str:
    """A bearer secret for one session (kids-mode devices hold no parent token)."""
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_session_token(token: str) -> bool:
    return token.startswith(SESSION_TOKEN_PREFIX)


def hash_token(token: str) -> str:
    """Only this is stored: the token has 256 random bits, so a plain hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def rules_of(container: Container) -> Rules:
    settings = container.settings
    return Rules(settings.heartbeat_max_gap_seconds, settings.session_timeout_seconds)


def _decode(value: bytes | str | None) -> SessionState | None:
    return _decoder.decode(value) if value else None


def _committed(transition: Transition, result: R) -> Decision[R]:
    """Write the transition's state, index entry and events (nothing when it has no events)."""
    if not transition.events:
        return Decision(result=result)
    state = transition.state
    member = str(state.session_id)
    score = state.last_active_at.timestamp() if state.active else None
    indexes = {ACTIVE_INDEX: {member: score}}
    if not state.active or isinstance(transition.events[0], SessionStarted):  # not per beat
        started = state.started_at.timestamp() if state.active else None
        indexes[profile_index(state.profile_id)] = {member: started}
    return Decision(
        result=result,
        events=transition.events,
        writes={session_key(state.session_id): _encoder.encode(state)},
        ttl_seconds=STATE_TTL_SECONDS,
        index_scores=indexes,
    )


# The facts a command needs before it can name the keys to watch: immutable per session.
_routes: OrderedDict[int, tuple[int, str]] = OrderedDict()


async def _route(container: Container, session_id: int) -> tuple[int, str]:
    """``(profile_id, timezone)`` of a session (the ordering key and the day's counter)."""
    known = _routes.get(session_id)
    if known is not None:
        return known
    state = _decode(await container.redis.get(session_key(session_id)))
    if state is None:
        raise SessionNotFound(session_id)
    _routes[session_id] = route = (state.profile_id, state.timezone)
    if len(_routes) > ROUTE_CACHE_SIZE:
        _routes.popitem(last=False)
    return route


async def watched_today_ms(container: Container, profile: Profile, now: datetime) -> int:
    """The profile's projected watched time on its local day at ``now``."""
    today = sessions.local_date(now, profile.timezone).isoformat()
    value = await container.redis.get(counter_key(profile.id, today))
    return int(value or 0)


async def start_session(
    container: Container,
    profile: Profile,
    video_id: int,
    *,
    public: bool,
    actor: str,
    receipt: Receipt[Started] | None = None,
    device_id: int | None = None,
) -> Started:
    """Open a session unless the profile's day is used up (``DailyLimitExceeded``).

    With a ``receipt`` the answer is stored with the ``session.started`` event, or, if a twin
    request stored one first, ``AlreadyAnswered`` is raised and nothing is started.
    """
    now = container.clock.now()
    session_id = int(await container.pipeline.run(NEXT_SESSION_ID, [SEQUENCE_KEY]))
    token = new_session_token()
    today = sessions.local_date(now, profile.timezone).isoformat()

    def decide(current: list[bytes | None]) -> Decision[Started | int]:
        watched_ms = int(current[1] or 0)
        if sessions.limit_reached(profile.daily_limit_minutes, watched_ms):
            return Decision(result=watched_ms)
        state, event = sessions.start(
            session_id=session_id,
            profile_id=profile.id,
            video_id=video_id,
            user_id=profile.user_id,
            timezone=profile.timezone,
            daily_limit_minutes=profile.daily_limit_minutes,
            now=now,
            token_hash=hash_token(token),
            public=public,
            actor=actor,
            device_id=device_id,
        )
        return _committed(Transition("active", state, (event,)), Started(state, token, watched_ms))

    outcome = await decide_once(
        container.events,
        str(profile.id),
        [session_key(session_id), counter_key(profile.id, today)],
        decide,
        receipt,
    )
    if isinstance(outcome, int):
        raise DailyLimitExceeded(profile, outcome)
    return outcome


class _StaleRoute:
    """The cached route no longer matches the stored session (its store was reset)."""


_STALE = _StaleRoute()


def _guarded(
    route: tuple[int, str], decide: Callable[[SessionState | None, int], Decision[R]]
) -> Callable[[list[bytes | None]], Decision[R | _StaleRoute]]:
    """``decide`` on the values read, unless the state shows ``route`` to be stale."""

    def checked(current: list[bytes | None]) -> Decision[R | _StaleRoute]:
        state = _decode(current[0])
        if state is not None and (state.profile_id, state.timezone) != route:
            return Decision(result=_STALE)
        return decide(state, int(current[1] or 0) if len(current) > 1 else 0)

    return checked


async def _on_session(
    container: Container,
    session_id: int,
    counter_on: datetime | None,
    decide: Callable[[SessionState | None, int], Decision[R]],
    receipt: Receipt[Any] | None = None,
) -> R:
    """Run ``decide(state, projected ms today)`` on one session under ``EventLog.decide``
    (``decide_once`` with a ``receipt``).

    The session's profile (the ordering key) and zone (today's counter, read when
    ``counter_on`` is given) are needed to name the keys before the state is read, so they come
    from a cache and are checked against the state read; a mismatch refreshes them once.
    """
    for _ in range(2):
        profile_id, timezone = await _route(container, session_id)
        keys = [session_key(session_id)]
        if counter_on is not None:
            keys.append(
                counter_key(profile_id, sessions.local_date(counter_on, timezone).isoformat())
            )

        checked = _guarded((profile_id, timezone), decide)
        result = await decide_once(container.events, str(profile_id), keys, checked, receipt)
        if not isinstance(result, _StaleRoute):
            return result
        _routes.pop(session_id, None)
    raise SessionNotFound(session_id)


def _outcome(session_id: int, transition: Transition | None) -> Transition:
    if transition is None:
        raise SessionNotFound(session_id)
    if transition.outcome == "already_ended":
        raise SessionOver(session_id)
    return transition


async def heartbeat(
    container: Container, session_id: int, caller: Caller, position: float | None
) -> Beat:
    """Accrue watched time; the session ends itself when today's limit is reached."""
    now = container.clock.now()
    rules = rules_of(container)

    def decide(state: SessionState | None, today_ms: int) -> Decision[Transition | None]:
        if state is None or not caller.may_access(state):
            return Decision(result=None)
        transition = sessions.heartbeat(
            state, now, rules, projected_today_ms=today_ms, position=position, actor=caller.actor
        )
        return _committed(transition, transition)

    transition = _outcome(session_id, await _on_session(container, session_id, now, decide))
    return Beat(transition.outcome, transition.state, transition.today_ms)


async def end_session(
    container: Container,
    session_id: int,
    caller: Caller,
    receipt: Receipt[Transition] | None = None,
) -> SessionState:
    """The player stops watching; ``SessionOver`` if the session had already ended.

    With a ``receipt`` the answer is stored with the ``session.ended`` event.
    """
    now = container.clock.now()
    rules = rules_of(container)

    def decide(state: SessionState | None, _today_ms: int) -> Decision[Transition | None]:
        if state is None or not caller.may_access(state):
            return Decision(result=None)
        transition = sessions.end(state, now, rules, actor=caller.actor)
        return _committed(transition, transition)

    ended = await _on_session(container, session_id, None, decide, receipt)
    return _outcome(session_id, ended).state


async def end_profile_sessions(
    container: Container, profile_id: int, reason: EndReason, *, public_only: bool
) -> list[int]:
    """End the profile's running sessions (only kids-mode ones with ``public_only``) because
    its parent acted; the ids ended. Each end is an event, so a replay repeats it."""
    now = container.clock.now()
    rules = rules_of(container)
    actor = f"system:{reason}"
    ended: list[int] = []
    members = await container.redis.zrange(profile_index(profile_id), 0, -1)
    for member in [m for m in members if isinstance(m, bytes | str)]:
        session_id = int(member)

        def decide(state: SessionState | None, _today_ms: int) -> Decision[bool]:
            if state is None or not state.active or (public_only and not state.public):
                return Decision(result=False)
            transition = sessions.end(state, now, rules, actor=actor, reason=reason)
            return _committed(transition, transition.outcome == "ended")

        try:
            if await _on_session(container, session_id, None, decide):
                ended.append(session_id)
        except SessionNotFound:  # its state expired: only the index entry is left
            await container.redis.zrem(profile_index(profile_id), member)
    return ended


async def get_session(container: Container, session_id: int, caller: Caller) -> SessionState:
    """The session as it stands now (a silent one shows as timed out before it is reaped).

    Once its state has expired from Redis (``STATE_TTL_SECONDS`` after its last command) the
    sessions projection answers instead, for the parent only: it keeps no token hash.
    """
    state = _decode(await container.redis.get(session_key(session_id)))
    if state is None and caller.user_id is not None:
        async with container.engine.connect() as conn:
            state = await SessionsProjection().session_state(conn, session_id, caller.user_id)
    if state is None or not caller.may_access(state):
        raise SessionNotFound(session_id)
    return sessions.view(state, container.clock.now(), rules_of(container))


async def silent_session_ids(container: Container, now: datetime, limit: int) -> list[int]:
    """Active sessions whose last heartbeat is at least the timeout before ``now``."""
    cutoff = now.timestamp() - container.settings.session_timeout_seconds
    found = await container.redis.zrangebyscore(ACTIVE_INDEX, "-inf", cutoff, start=0, num=limit)
    return [int(member) for member in found if isinstance(member, bytes | str)]


async def expire_session(container: Container, session_id: int, now: datetime) -> bool:
    """End one silent session at its last heartbeat; ``False`` if it beat or ended meanwhile."""
    rules = rules_of(container)

    def decide(state: SessionState | None, _today_ms: int) -> Decision[bool]:
        if state is None:
            return Decision(result=False, index_scores={ACTIVE_INDEX: {str(session_id): None}})
        transition = sessions.expire(state, now, rules, actor="system:reaper")
        return Decision(result=False) if transition is None else _committed(transition, True)

    try:
        return await _on_session(container, session_id, None, decide)
    except SessionNotFound:  # its state expired: only the index entry is left
        await container.redis.zrem(ACTIVE_INDEX, str(session_id))
        return False
