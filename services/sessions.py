"""Watch sessions on the command side: state in Redis next to the log, changed with each event.

Every command runs through ``EventLog.decide``: the session's state key (and today's
daily-limit counter) are watched, the pure rule in ``domain.sessions`` decides on what was
read, and the new state, the active-session index and the events are written in one ``MULTI``.
Two heartbeats racing on one session therefore never both count the same seconds: the loser
re-reads the winner's beat and accrues only what is left.

Keys:

* ``medio:session:{s}:<id>``: the session's ``SessionState`` (JSON), kept for
  ``STATE_TTL_SECONDS`` (``{s}``: the hash tag of the profile's shard, as on its stream)
* ``medio:sessions:active:{s}``: the shard's active session ids scored by their last heartbeat
  (epoch seconds), which the reaper reads to end silent ones
* ``medio:sessions:profile:{s}:<profile_id>``: the profile's running sessions scored by their
  start, so a parent's action (kids mode off, the profile deleted) can end them
* ``medio:sessions:seq``: the session id sequence (moved past the archive after a Redis
  restart, ``projections.recovery``)
* ``medio:shard-of:session:<id>``: the session's shard, written when its id is handed out (a
  command names the session by id alone)
* ``medio:session-token:<hash>``: the session a session token belongs to (a child asks for
  more time with it, also after the session ended), written with the shard note

Starts and heartbeats also read the profile's policy and its command-side count of today
(``services.policy``) in the same atomic step: a parent's change applies at the next beat, and
two devices of one child beating at once are serialised on that count, so never both pass the
end of the day's budget.

The daily-limit counter is the ``projections.daily_limit`` projection: exact up to the
projection lag (see docs/api.md, "Daily limit across devices").
"""

from __future__ import annotations

import asyncio
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
    SEQUENCE_KEY,
    STATE_TTL_SECONDS,
    active_index,
    profile_index,
    session_key,
    shard_route_key,
)
from domain import policy as policy_rules
from domain import sessions
from domain.catalog import Profile, Video
from domain.events import EndReason, SessionStarted, SessionStopRequested
from domain.policy import Policy, Refusal
from domain.sessions import Rules, SessionState, Transition
from projections.daily_limit import counter_key
from projections.sessions import SessionsProjection
from services.idempotency import Receipt, decide_once
from services.policy import (
    USED_TTL_SECONDS,
    decode_policy,
    policy_key,
    policy_of,
    stored_policy,
    today_ms,
    used_key,
)

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


class StartRefused(Exception):
    """The profile's policy refuses a new session now: ``refusal.reason`` says why (daily
    limit, bedtime, lock, age rating) and ``refusal.allowed_at`` when it may try again."""

    def __init__(self, profile: Profile, refusal: Refusal, limit_minutes: int, watched_ms: int):
        super().__init__(refusal.reason)
        self.refusal = refusal
        self.limit_minutes = limit_minutes  # today's limit with today's bonus
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
    budget_ms: int  # today's limit and bonus

    @property
    def remaining_minutes(self) -> int:
        budget = self.budget_ms // sessions.MS_PER_MINUTE
        return sessions.remaining_minutes(budget, self.watched_today_ms)


@dataclass(frozen=True)
class Beat:
    """A heartbeat's outcome (``active``, ``limit_reached``, ``bedtime`` or ``stopped``),
    today's figures after it, and when the session will end (and whether to warn)."""

    status: str
    state: SessionState
    today_ms: int
    budget_ms: int
    ends_at: datetime | None = None
    warning: str | None = None

    @property
    def remaining_minutes(self) -> int:
        budget = self.budget_ms // sessions.MS_PER_MINUTE
        return sessions.remaining_minutes(budget, self.today_ms)


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


def token_key(token_hash: str) -> str:
    """Which session a session token belongs to."""
    return f"medio:session-token:{token_hash}"


def _committed(
    transition: Transition,
    result: R,
    shard: int,
    records: dict[str, tuple[bytes | str, int]] | None = None,
) -> Decision[R]:
    """Write the transition's state, index entry, events and ``records`` (nothing when it has
    no events), on the keys of the profile's ``shard``."""
    if not transition.events:
        return Decision(result=result)
    state = transition.state
    member = str(state.session_id)
    score = state.last_active_at.timestamp() if state.active else None
    indexes = {active_index(shard): {member: score}}
    writes: dict[str, bytes | str | None] = {
        session_key(state.session_id, shard): _encoder.encode(state)
    }
    if not state.active or isinstance(transition.events[0], SessionStarted):  # not per beat
        started = state.started_at.timestamp() if state.active else None
        indexes[profile_index(state.profile_id, shard)] = {member: started}
    return Decision(
        result=result,
        events=transition.events,
        writes=writes,
        ttl_seconds=STATE_TTL_SECONDS,
        index_scores=indexes,
        records=records or {},
    )


# The facts a command needs before it can name the keys to watch: immutable per session.
_routes: OrderedDict[int, tuple[int, str]] = OrderedDict()


async def session_shard(container: Container, session_id: int) -> int | None:
    """The shard whose keys hold the session (``None``: no such session)."""
    noted = await container.pipeline.execute("GET", shard_route_key("session", session_id))
    return None if noted is None else int(noted)


async def stored_session(container: Container, session_id: int) -> SessionState | None:
    """The session's stored state, wherever its shard keeps it."""
    shard = await session_shard(container, session_id)
    if shard is None:
        return None
    return _decode(await container.pipeline.execute("GET", session_key(session_id, shard)))


async def _route(container: Container, session_id: int) -> tuple[int, str]:
    """``(profile_id, timezone)`` of a session (the ordering key and the day's counter)."""
    known = _routes.get(session_id)
    if known is not None:
        return known
    state = await stored_session(container, session_id)
    if state is None:
        raise SessionNotFound(session_id)
    _routes[session_id] = route = (state.profile_id, state.timezone)
    if len(_routes) > ROUTE_CACHE_SIZE:
        _routes.popitem(last=False)
    return route


async def watched_today_ms(container: Container, profile: Profile, now: datetime) -> int:
    """The profile's watched time on its local day at ``now`` (projected or counted)."""
    today = sessions.local_date(now, profile.timezone).isoformat()
    shard = container.events.shard_of(str(profile.id))
    projected, used = await container.pipeline.execute(
        "MGET", counter_key(profile.id, today, shard), used_key(profile.id, today, shard)
    )
    return today_ms(projected, used)


async def start_session(
    container: Container,
    profile: Profile,
    video: Video,
    *,
    public: bool,
    actor: str,
    receipt: Receipt[Started] | None = None,
    device_id: int | None = None,
) -> Started:
    """Open a session unless the profile's policy refuses it now (``StartRefused``: the age
    rating, a lock, bedtime or the day's budget, in that order).

    With a ``receipt`` the answer is stored with the ``session.started`` event, or, if a twin
    request stored one first, ``AlreadyAnswered`` is raised and nothing is started.
    """
    now = container.clock.now()
    shard = container.events.shard_of(str(profile.id))
    session_id = int(await container.pipeline.run(NEXT_SESSION_ID, [SEQUENCE_KEY]))
    token = new_session_token()
    # Before the session exists: a start refused leaves both to expire, naming no session.
    await asyncio.gather(
        container.pipeline.send(
            "SET", shard_route_key("session", session_id), shard, "EX", STATE_TTL_SECONDS
        ),
        container.pipeline.send(
            "SET", token_key(hash_token(token)), session_id, "EX", STATE_TTL_SECONDS
        ),
    )
    day = sessions.local_date(now, profile.timezone)
    today = day.isoformat()

    def decide(current: list[bytes | None]) -> Decision[Started | StartRefused]:
        # The catalog row's settings (what the parent last saved), with the stored lock and
        # bonuses; the stored key is compared at commit, so a lock given meanwhile is seen.
        policy = policy_of(profile, decode_policy(current[2]))
        watched_ms = today_ms(current[1], current[3])
        budget = policy_rules.budget_ms(policy, day)
        refusal = policy_rules.start_refusal(
            policy, now, watched_ms, age=profile.age, min_age=video.min_age
        )
        if refusal is not None:
            limit = budget // sessions.MS_PER_MINUTE
            return Decision(result=StartRefused(profile, refusal, limit, watched_ms))
        state, event = sessions.start(
            session_id=session_id,
            profile_id=profile.id,
            video_id=video.id,
            user_id=profile.user_id,
            timezone=profile.timezone,
            daily_limit_minutes=policy_rules.day_limit_minutes(policy, day),
            now=now,
            token_hash=hash_token(token),
            public=public,
            actor=actor,
            device_id=device_id,
            video_duration=video.duration,
        )
        started = Started(state, token, watched_ms, budget)
        return _committed(Transition("active", state, (event,)), started, shard)

    outcome = await decide_once(
        container.events,
        str(profile.id),
        [
            session_key(session_id, shard),
            counter_key(profile.id, today, shard),
            policy_key(profile.id, shard),
            used_key(profile.id, today, shard),
        ],
        decide,
        receipt,
    )
    if isinstance(outcome, StartRefused):
        raise outcome
    return outcome


class _StaleRoute:
    """The cached route no longer matches the stored session (its store was reset)."""


_STALE = _StaleRoute()


@dataclass(frozen=True)
class Today:
    """What a command reads of the session's profile and day besides the session itself:
    watched ms today (projected or counted), the profile's policy (``None`` when it has none
    stored), and the key of the command side's count of today."""

    ms: int = 0
    policy: Policy | None = None
    used_key: str = ""
    shard: int = 0  # of the session's profile: its keys' hash tag


Decide = Callable[[SessionState | None, Today], Decision[R]]


def _guarded(
    route: tuple[int, str], shard: int, keys: list[str], decide: Decide[R]
) -> Callable[[list[bytes | None]], Decision[R | _StaleRoute]]:
    """``decide`` on the values read, unless the state shows ``route`` to be stale."""

    def checked(current: list[bytes | None]) -> Decision[R | _StaleRoute]:
        state = _decode(current[0])
        if state is None or (state.profile_id, state.timezone) != route:
            return Decision(result=_STALE)  # a wrong route also names the wrong shard's key
        today = Today(shard=shard)
        if len(current) > 1:
            policy = stored_policy(current[2])
            today = Today(today_ms(current[1], current[3]), policy, keys[3], shard)
        return decide(state, today)

    return checked


async def _on_session(
    container: Container,
    session_id: int,
    counter_on: datetime | None,
    decide: Decide[R],
    receipt: Receipt[Any] | None = None,
) -> R:
    """Run ``decide(state, today)`` on one session under ``EventLog.decide`` (``decide_once``
    with a ``receipt``).

    The session's profile (the ordering key) and zone (today's counters and the policy, read
    when ``counter_on`` is given) are needed to name the keys before the state is read, so they
    come from a cache and are checked against the state read; a mismatch refreshes them once.
    """
    for _ in range(2):
        profile_id, timezone = await _route(container, session_id)
        shard = container.events.shard_of(str(profile_id))
        keys = [session_key(session_id, shard)]
        if counter_on is not None:
            day = sessions.local_date(counter_on, timezone).isoformat()
            keys += [
                counter_key(profile_id, day, shard),
                policy_key(profile_id, shard),
                used_key(profile_id, day, shard),
            ]

        checked = _guarded((profile_id, timezone), shard, keys, decide)
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
    """Accrue watched time and apply the profile's current policy: the session ends itself at
    a stop or lock (``stopped``), at bedtime, or when today's budget is used up."""
    now = container.clock.now()
    rules = rules_of(container)

    def decide(state: SessionState | None, today: Today) -> Decision[Transition | None]:
        if state is None or not caller.may_access(state):
            return Decision(result=None)
        transition = sessions.heartbeat(
            state,
            now,
            rules,
            projected_today_ms=today.ms,
            position=position,
            actor=caller.actor,
            policy=today.policy,
        )
        if transition.outcome == "already_ended":  # timed out: nothing accrued
            return _committed(transition, transition, today.shard)
        # This beat's share of today joins the command side's count in the same step.
        counted: dict[str, tuple[bytes | str, int]] = {
            today.used_key: (str(transition.today_ms), USED_TTL_SECONDS)
        }
        return _committed(transition, transition, today.shard, counted)

    transition = _outcome(session_id, await _on_session(container, session_id, now, decide))
    return Beat(
        transition.outcome,
        transition.state,
        transition.today_ms,
        transition.budget_ms,
        transition.ends_at,
        transition.warning,
    )


async def request_stop(
    container: Container,
    session_id: int,
    user_id: int,
    actor: str,
    receipt: Receipt[SessionState] | None = None,
) -> SessionState:
    """The parent stops one running session: its next heartbeat ends it (``stopped``). With a
    ``receipt`` the answer is stored with the ``session.stop_requested`` event."""
    now = container.clock.now()
    rules = rules_of(container)

    def decide(state: SessionState | None, today: Today) -> Decision[SessionState | None]:
        if state is None or state.user_id != user_id:
            return Decision(result=None)
        if not sessions.view(state, now, rules).active or state.stop_requested:
            return Decision(result=state)
        stopping = msgspec.structs.replace(state, stop_requested=True)
        event = SessionStopRequested(
            occurred_at=now,
            actor=actor,
            session_id=session_id,
            profile_id=state.profile_id,
            video_id=state.video_id,
            local_date=sessions.local_date(now, state.timezone).isoformat(),
        )
        return _committed(Transition("active", stopping, (event,)), stopping, today.shard)

    found = await _on_session(container, session_id, None, decide, receipt)
    if found is None:
        raise SessionNotFound(session_id)
    if not sessions.view(found, now, rules).active:
        raise SessionOver(session_id)
    return found


async def session_of_token(container: Container, token_hash: str) -> SessionState | None:
    """The session a session token belongs to, also after it ended (while its state is kept)."""
    session_id = await container.redis.get(token_key(token_hash))
    if session_id is None:
        return None
    state = await stored_session(container, int(session_id))
    return state if state is not None and state.token_hash == token_hash else None


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

    def decide(state: SessionState | None, today: Today) -> Decision[Transition | None]:
        if state is None or not caller.may_access(state):
            return Decision(result=None)
        transition = sessions.end(state, now, rules, actor=caller.actor)
        return _committed(transition, transition, today.shard)

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
    index = profile_index(profile_id, container.events.shard_of(str(profile_id)))
    members = await container.redis.zrange(index, 0, -1)
    for member in [m for m in members if isinstance(m, bytes | str)]:
        session_id = int(member)

        def decide(state: SessionState | None, today: Today) -> Decision[bool]:
            if state is None or not state.active or (public_only and not state.public):
                return Decision(result=False)
            transition = sessions.end(state, now, rules, actor=actor, reason=reason)
            return _committed(transition, transition.outcome == "ended", today.shard)

        try:
            if await _on_session(container, session_id, None, decide):
                ended.append(session_id)
        except SessionNotFound:  # its state expired: only the index entry is left
            await container.redis.zrem(index, member)
    return ended


async def get_session(container: Container, session_id: int, caller: Caller) -> SessionState:
    """The session as it stands now (a silent one shows as timed out before it is reaped).

    Once its state has expired from Redis (``STATE_TTL_SECONDS`` after its last command) the
    sessions projection answers instead, for the parent only: it keeps no token hash.
    """
    state = await stored_session(container, session_id)
    if state is None and caller.user_id is not None:
        async with container.engine.connect() as conn:
            state = await SessionsProjection().session_state(conn, session_id, caller.user_id)
    if state is None or not caller.may_access(state):
        raise SessionNotFound(session_id)
    return sessions.view(state, container.clock.now(), rules_of(container))


async def silent_session_ids(container: Container, now: datetime, limit: int) -> list[int]:
    """Active sessions whose last heartbeat is at least the timeout before ``now`` (up to
    ``limit`` from each shard's index)."""
    cutoff = now.timestamp() - container.settings.session_timeout_seconds
    found: list[int] = []
    for shard in range(container.events.shards):
        members = await container.redis.zrangebyscore(
            active_index(shard), "-inf", cutoff, start=0, num=limit
        )
        found += [int(member) for member in members if isinstance(member, bytes | str)]
    return found


async def expire_session(container: Container, session_id: int, now: datetime) -> bool:
    """End one silent session at its last heartbeat; ``False`` if it beat or ended meanwhile."""
    rules = rules_of(container)

    def decide(state: SessionState | None, today: Today) -> Decision[bool]:
        if state is None:
            index = {active_index(today.shard): {str(session_id): None}}
            return Decision(result=False, index_scores=index)
        transition = sessions.expire(state, now, rules, actor="system:reaper")
        if transition is None:
            return Decision(result=False)
        return _committed(transition, True, today.shard)

    try:
        return await _on_session(container, session_id, None, decide)
    except SessionNotFound:  # its state expired: only the index entry is left
        for shard in range(container.events.shards):
            await container.redis.zrem(active_index(shard), str(session_id))
        return False
