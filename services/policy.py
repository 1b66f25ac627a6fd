"""Parental policy on the command side: the profile's current policy next to the log, the
parent's actions on it (bonus, lock) and the child's requests for more time (CONTRACT §13).

Every change is an event appended in the same atomic step as the state it changes
(``EventLog.decide``), and the session commands (``services.sessions``) read the same keys in
their own atomic step, so a policy change applies from the next heartbeat on every device.

Keys:

* ``medio:policy:{profile_id}``: the profile's ``domain.policy.Policy`` (JSON): its settings as
  the parent last set them, the lock, bonuses per local day, the pending request and the
  cooldown after a denial. A profile's start writes it from the catalog row when it is missing
  or behind (e.g. a profile from before policies, or a Redis that lost its last writes).
* ``medio:policy:{profile_id}:used:{YYYY-MM-DD}``: the profile's watched ms on that local day
  as the session commands counted them (each heartbeat adds its share atomically). The
  ``daily_limit`` projection lags by the projection lag; taking the larger of the two makes two
  devices beating at once see each other's time, so they never both pass the end.
* ``medio:time-request:{id}``, ``medio:time-requests:profile:{profile_id}`` (ids by creation)
  and ``medio:time-requests:seq``: the requests, kept ``REQUEST_TTL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import msgspec

from adapters.container import Container
from adapters.eventlog import Decision
from adapters.session_keys import shard_route_key
from domain import policy as rules
from domain.catalog import Profile
from domain.events import (
    BonusGranted,
    PolicySet,
    ProfileLocked,
    ProfileUnlocked,
    TimeRequestDecided,
    TimeRequested,
)
from domain.localtime import local_date
from domain.policy import Policy
from domain.sessions import remaining_minutes
from projections.daily_limit import counter_key
from services.idempotency import Receipt, decide_once

R = TypeVar("R")

POLICY_PREFIX = "medio:policy:"
REQUEST_PREFIX = "medio:time-request:"
REQUEST_INDEX_PREFIX = "medio:time-requests:profile:"
REQUEST_SEQUENCE = "medio:time-requests:seq"
REQUEST_TTL_SECONDS = 30 * 86400
USED_TTL_SECONDS = 3 * 86400  # a local day's count outlives the day in every zone

RequestStatus = Literal["pending", "approved", "denied"]

_encoder = msgspec.json.Encoder()
_policy_decoder = msgspec.json.Decoder(Policy)


# Every key below carries the hash tag of the profile's shard (as its stream does), so each
# command's atomic step touches one Redis Cluster slot.


def policy_key(profile_id: int, shard: int) -> str:
    return f"{POLICY_PREFIX}{{{shard}}}:{profile_id}"


def used_key(profile_id: int, day: str, shard: int) -> str:
    return f"{POLICY_PREFIX}{{{shard}}}:{profile_id}:used:{day}"


def request_key(request_id: int, shard: int) -> str:
    return f"{REQUEST_PREFIX}{{{shard}}}:{request_id}"


def request_index(profile_id: int, shard: int) -> str:
    return f"{REQUEST_INDEX_PREFIX}{{{shard}}}:{profile_id}"


def _shard(container: Container, profile_id: int) -> int:
    return container.events.shard_of(str(profile_id))


def _policy_key(container: Container, profile_id: int) -> str:
    return policy_key(profile_id, _shard(container, profile_id))


async def _on_policy(
    container: Container,
    profile: Profile,
    decide: Callable[[list[bytes | None]], Decision[R]],
    receipt: Receipt[Any] | None = None,
) -> R:
    """``decide`` on the profile's stored policy alone, in the profile's order (``decide_once``:
    with a ``receipt``, the answer is stored with the events)."""
    keys = [_policy_key(container, profile.id)]
    return await decide_once(container.events, str(profile.id), keys, decide, receipt)


def _request_index(container: Container, profile_id: int) -> str:
    return request_index(profile_id, _shard(container, profile_id))


def decode_policy(value: bytes | str | None) -> Policy | None:
    return _policy_decoder.decode(value) if value else None


# Policies as stored, decoded once per API process: every heartbeat reads its profile's policy,
# which changes only when the parent acts. The read value itself is the key, so an entry can
# never be stale; and handing each beat the same ``Policy`` object lets ``domain.policy`` keep
# what it works out per day for that object.
_stored: dict[bytes | str, Policy] = {}
STORED_POLICIES_KEPT = 10_000


def stored_policy(value: bytes | str | None) -> Policy | None:
    """``decode_policy``, remembered per stored value (for the session commands' hot path)."""
    if not value:
        return None
    policy = _stored.get(value)
    if policy is None:
        if len(_stored) >= STORED_POLICIES_KEPT:
            _stored.clear()
        policy = _stored[value] = _policy_decoder.decode(value)
    return policy


def encode_policy(policy: Policy) -> bytes:
    return _encoder.encode(policy)


def policy_of(profile: Profile, stored: Policy | None) -> Policy:
    """The profile's settings from its catalog row, with the parent's actions kept from
    ``stored`` (lock, bonuses, requests)."""
    settings = {
        "timezone": profile.timezone,
        "daily_limit_minutes": profile.daily_limit_minutes,
        "weekday_limits": dict(profile.weekday_limits or {}),
        "bedtime": rules.bedtime_windows(profile.bedtime),
        "warning_minutes": profile.warning_minutes,
        "limit_action": profile.limit_action,
    }
    return msgspec.structs.replace(stored or Policy(), **settings)


def today_ms(projected: bytes | str | None, used: bytes | str | None) -> int:
    """Watched today: the projected counter, or the command side's own count when ahead."""
    return max(int(projected or 0), int(used or 0))


async def current_policy(container: Container, profile: Profile) -> Policy:
    """The profile's policy now: its catalog settings with the parent's stored actions."""
    return policy_of(
        profile,
        decode_policy(await container.redis.get(_policy_key(container, profile.id))),
    )


# The parent sets the policy -------------------------------------------------------------------


async def record_policy(container: Container, profile: Profile, actor: str) -> None:
    """Store the profile's settings as its current policy and record them (``profile.policy_set``)
    after a create or a change of any of them."""
    now = container.clock.now()

    def decide(current: list[bytes | None]) -> Decision[None]:
        updated = policy_of(profile, decode_policy(current[0]))
        event = PolicySet(
            occurred_at=now,
            actor=actor,
            profile_id=profile.id,
            user_id=profile.user_id,
            local_date=local_date(now, profile.timezone).isoformat(),
            timezone=profile.timezone,
            daily_limit_minutes=profile.daily_limit_minutes,
            weekday_limits=rules.weekday_limits_value(profile.weekday_limits),
            bedtime=profile.bedtime,
            warning_minutes=profile.warning_minutes,
            limit_action=profile.limit_action,
        )
        return Decision(
            None,
            (event,),
            {_policy_key(container, profile.id): encode_policy(updated)},
        )

    await _on_policy(container, profile, decide)


# Bonus and lock ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bonus:
    """Today's bonus after a grant, and what the day now allows."""

    profile_id: int
    date: str
    bonus_minutes: int
    limit_minutes: int
    remaining_minutes: int


async def grant_bonus(
    container: Container,
    profile: Profile,
    minutes: int,
    actor: str,
    receipt: Receipt[Bonus] | None = None,
) -> Bonus:
    """``minutes`` more for the profile's local today (``profile.bonus_granted``)."""
    now = container.clock.now()
    day = local_date(now, profile.timezone)
    keys = [
        _policy_key(container, profile.id),
        counter_key(profile.id, day.isoformat(), _shard(container, profile.id)),
    ]
    keys.append(used_key(profile.id, day.isoformat(), _shard(container, profile.id)))

    def decide(current: list[bytes | None]) -> Decision[Bonus]:
        updated = rules.with_bonus(policy_of(profile, decode_policy(current[0])), day, minutes)
        total = rules.bonus_minutes(updated, day)
        limit = rules.day_limit_minutes(updated, day)
        watched = today_ms(current[1], current[2])
        bonus = Bonus(
            profile.id, day.isoformat(), total, limit, remaining_minutes(limit + total, watched)
        )
        event = BonusGranted(
            occurred_at=now,
            actor=actor,
            profile_id=profile.id,
            local_date=day.isoformat(),
            minutes=minutes,
            total_minutes=total,
        )
        return Decision(
            bonus,
            (event,),
            {_policy_key(container, profile.id): encode_policy(updated)},
        )

    return await decide_once(container.events, str(profile.id), keys, decide, receipt)


async def set_lock(
    container: Container,
    profile: Profile,
    until: datetime | None,
    actor: str,
    receipt: Receipt[None] | None = None,
) -> None:
    """Pause watching until ``until`` (or until unlocked): starts are refused and running
    sessions end at their next heartbeat (``profile.locked``)."""
    now = container.clock.now()

    def decide(current: list[bytes | None]) -> Decision[None]:
        updated = msgspec.structs.replace(
            policy_of(profile, decode_policy(current[0])), locked=True, lock_until=until
        )
        event = ProfileLocked(
            occurred_at=now,
            actor=actor,
            profile_id=profile.id,
            local_date=local_date(now, profile.timezone).isoformat(),
            until=until,
        )
        return Decision(
            None,
            (event,),
            {_policy_key(container, profile.id): encode_policy(updated)},
        )

    await _on_policy(container, profile, decide, receipt)


async def lift_lock(
    container: Container, profile: Profile, actor: str, receipt: Receipt[None] | None = None
) -> None:
    """Lift the lock (``profile.unlocked``; nothing is recorded when there was none)."""
    now = container.clock.now()

    def decide(current: list[bytes | None]) -> Decision[None]:
        stored = policy_of(profile, decode_policy(current[0]))
        if not stored.locked:
            return Decision(None)
        updated = msgspec.structs.replace(stored, locked=False, lock_until=None)
        event = ProfileUnlocked(
            occurred_at=now,
            actor=actor,
            profile_id=profile.id,
            local_date=local_date(now, profile.timezone).isoformat(),
        )
        return Decision(
            None,
            (event,),
            {_policy_key(container, profile.id): encode_policy(updated)},
        )

    await _on_policy(container, profile, decide, receipt)


# Asking for more time -----------------------------------------------------------------------------


class TimeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A child's request for more minutes, as stored and as the API shows it."""

    request_id: int
    profile_id: int
    user_id: int  # the parent who decides
    minutes: int
    message: str | None
    status: RequestStatus
    created_at: datetime
    local_date: str  # the profile's local day it was asked on (approved minutes count there)
    decided_at: datetime | None = None
    granted_minutes: int | None = None
    asker: str = ""  # hash of the session or device token that asked ("" for the parent)


_request_decoder = msgspec.json.Decoder(TimeRequest)


class RequestPending(Exception):
    """The profile already has a request waiting for the parent."""


class RequestCooldown(Exception):
    """A request was denied a short while ago; ``retry_after`` seconds until the next."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many requests")
        self.retry_after = retry_after


class RequestNotFound(LookupError):
    """No such request, or not the caller's to see."""


class RequestDecided(Exception):
    """The request was approved or denied already."""


async def ask_for_time(
    container: Container,
    profile: Profile,
    minutes: int,
    message: str | None,
    *,
    asker: str,
    actor: str,
    receipt: Receipt[TimeRequest] | None = None,
) -> TimeRequest:
    """A request for ``minutes`` more (``time_request.created``); one pending per profile
    (``RequestPending``), none during the cooldown after a denial (``RequestCooldown``).

    ``asker``: the hash of the session or device token asking (it may read the request back),
    ``""`` when the parent asks on the child's behalf. Callable by any route that has
    established the profile (a session token's, a device's, or the parent's own).
    """
    now = container.clock.now()
    request_id = int(await container.redis.incr(REQUEST_SEQUENCE))
    shard = _shard(container, profile.id)
    # The request is named by id alone later: note its shard first (a refused request leaves
    # the note to expire, naming nothing).
    await container.redis.set(
        shard_route_key("time-request", request_id), shard, ex=REQUEST_TTL_SECONDS
    )
    day = local_date(now, profile.timezone).isoformat()

    def decide(current: list[bytes | None]) -> Decision[TimeRequest | RequestPending | int]:
        stored = policy_of(profile, decode_policy(current[0]))
        if stored.pending_request is not None:
            return Decision(RequestPending())
        if stored.cooldown_until is not None and now < stored.cooldown_until:
            return Decision(max(1, int((stored.cooldown_until - now).total_seconds() + 0.999)))
        request = TimeRequest(
            request_id=request_id,
            profile_id=profile.id,
            user_id=profile.user_id,
            minutes=minutes,
            message=message,
            status="pending",
            created_at=now,
            local_date=day,
            asker=asker,
        )
        updated = msgspec.structs.replace(stored, pending_request=request_id)
        event = TimeRequested(
            occurred_at=now,
            actor=actor,
            request_id=request_id,
            profile_id=profile.id,
            local_date=day,
            minutes=minutes,
            message=message,
        )
        return Decision(
            request,
            (event,),
            {_policy_key(container, profile.id): encode_policy(updated)},
            index_scores={
                _request_index(container, profile.id): {str(request_id): now.timestamp()}
            },
            records={
                request_key(request_id, shard): (_encoder.encode(request), REQUEST_TTL_SECONDS)
            },
        )

    result = await _on_policy(container, profile, decide, receipt)
    if isinstance(result, RequestPending):
        raise result
    if isinstance(result, int):
        raise RequestCooldown(result)
    return result


async def _stored_request(container: Container, request_id: int) -> TimeRequest | None:
    shard = await container.redis.get(shard_route_key("time-request", request_id))
    if shard is None:
        return None
    value = await container.redis.get(request_key(request_id, int(shard)))
    return _request_decoder.decode(value) if value else None


async def get_time_request(
    container: Container, request_id: int, *, user_id: int | None, asker: str | None
) -> TimeRequest:
    """The request, for its parent or the token that asked; else ``RequestNotFound``."""
    found = await _stored_request(container, request_id)
    if found is None or not (
        (user_id is not None and found.user_id == user_id) or (asker and found.asker == asker)
    ):
        raise RequestNotFound(request_id)
    return found


async def profile_time_requests(container: Container, profile_id: int) -> list[TimeRequest]:
    """The profile's requests newest first (those of the last ``REQUEST_TTL_SECONDS``)."""
    ids = await container.redis.zrevrange(_request_index(container, profile_id), 0, -1)
    if not ids:
        return []
    shard = _shard(container, profile_id)
    values = await container.redis.mget(
        [request_key(int(i), shard) for i in ids if isinstance(i, bytes | str)]
    )
    return [_request_decoder.decode(v) for v in values if v]


async def list_time_requests(
    container: Container, profile: Profile, status: RequestStatus | None
) -> list[TimeRequest]:
    """The profile's requests newest first, those with ``status`` when given."""
    found = await profile_time_requests(container, profile.id)
    return [r for r in found if status is None or r.status == status]


async def forget_profile(container: Container, profile_id: int) -> None:
    """Delete every key of the profile's policy: the policy, its counts of each day, its
    requests for time and their index (an erasure, ``services.privacy``)."""
    redis = container.redis
    requests = await redis.zrange(_request_index(container, profile_id), 0, -1)
    doomed: list[bytes | str] = [
        _policy_key(container, profile_id),
        _request_index(container, profile_id),
    ]
    shard = _shard(container, profile_id)
    doomed += [request_key(int(r), shard) for r in requests if isinstance(r, bytes | str)]
    async for name in redis.scan_iter(match=used_key(profile_id, "*", shard), count=1000):
        doomed.append(name)
    await redis.unlink(*doomed)


async def decide_time_request(
    container: Container,
    user_id: int,
    request_id: int,
    *,
    approve: bool,
    minutes: int | None,
    actor: str,
    receipt: Receipt[TimeRequest] | None = None,
) -> TimeRequest:
    """The parent approves (the granted minutes become bonus for the request's local day) or
    denies (the profile's cooldown starts); ``RequestDecided`` the second time."""
    now = container.clock.now()
    found = await _stored_request(container, request_id)
    if found is None or found.user_id != user_id:
        raise RequestNotFound(request_id)
    profile_id = found.profile_id
    cooldown = timedelta(seconds=container.settings.time_request_cooldown_seconds)
    shard = _shard(container, profile_id)
    keys = [request_key(request_id, shard), policy_key(profile_id, shard)]

    def decide(current: list[bytes | None]) -> Decision[TimeRequest | RequestDecided | None]:
        if current[0] is None:
            return Decision(None)
        request = _request_decoder.decode(current[0])
        if request.status != "pending":
            return Decision(RequestDecided())
        stored = decode_policy(current[1]) or Policy()
        if stored.pending_request == request_id:
            stored = msgspec.structs.replace(stored, pending_request=None)
        day = request.local_date
        granted = (minutes or request.minutes) if approve else 0
        decided = msgspec.structs.replace(
            request,
            status="approved" if approve else "denied",
            decided_at=now,
            granted_minutes=granted if approve else None,
        )
        events: list[TimeRequestDecided | BonusGranted] = [
            TimeRequestDecided(
                occurred_at=now,
                actor=actor,
                request_id=request_id,
                profile_id=profile_id,
                local_date=day,
                status=decided.status,  # type: ignore[arg-type]
                minutes=granted,
            )
        ]
        if approve:
            stored = rules.with_bonus(stored, datetime.fromisoformat(day).date(), granted)
            events.append(
                BonusGranted(
                    occurred_at=now,
                    actor=actor,
                    profile_id=profile_id,
                    local_date=day,
                    minutes=granted,
                    total_minutes=stored.bonuses[day],
                    request_id=request_id,
                )
            )
        else:
            stored = msgspec.structs.replace(stored, cooldown_until=now + cooldown)
        return Decision(
            decided,
            tuple(events),
            {_policy_key(container, profile_id): encode_policy(stored)},
            records={
                request_key(request_id, shard): (_encoder.encode(decided), REQUEST_TTL_SECONDS)
            },
        )

    result = await decide_once(container.events, str(profile_id), keys, decide, receipt)
    if result is None:
        raise RequestNotFound(request_id)
    if isinstance(result, RequestDecided):
        raise result
    return result
