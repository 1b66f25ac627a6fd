"""Kids devices (CONTRACT §14): pair by code, confirm, collect a token, list, revoke.

Every command runs through ``EventLog.decide``, as watch sessions do: the keys it depends on
are read, the pure rule in ``domain.devices`` decides, and the new state and the event are
written in one compare-and-append. A code confirmed twice at once, or a token collected by two
polls at once, therefore has exactly one winner. Key layout: ``adapters.device_keys``.

A device token is checked on every request by one ``GET`` of its hash's key (through the shared
pipeline, so concurrent requests share the round trip). There is no per-process cache: a
revocation deletes that key in the same step as it appends ``device.revoked``, so the token
fails at once on every API process.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime

import msgspec

from adapters.container import Container
from adapters.device_keys import (
    EXPIRED_PAIRING_KEPT_SECONDS,
    device_key,
    pairing_key,
    profile_devices,
    token_key,
    user_code_key,
)
from adapters.eventlog import Decision
from domain import devices
from domain import policy as policy_rules
from domain.catalog import Page, Profile, Video
from domain.devices import Device, Pairing, PollError
from domain.localtime import MS_PER_MINUTE, local_date
from domain.sessions import remaining_minutes
from services import catalog
from services.idempotency import Receipt, decide_once
from services.policy import current_policy
from services.sessions import watched_today_ms

MAX_DEVICE_ID = 2**53 - 1  # random ids, exact in every JSON client (JavaScript included)
# Wrong user codes a parent may type per hour before confirmations are refused (429): with the
# general rate limit alone, one account could try 100 codes per 15 minutes.
MAX_CODE_MISSES_PER_HOUR = 10
MISSES_PREFIX = "medio:pairing-misses:"

_encoder = msgspec.json.Encoder()
_pairing = msgspec.json.Decoder(Pairing)
_device = msgspec.json.Decoder(Device)


class PairingUnavailable(RuntimeError):
    """Pairing is refused on Redis Cluster: its keys are named by secret codes alone, so the
    pairing, the code and the new device cannot be given one slot yet (docs/operations.md)."""


def _pairing_available(container: Container) -> None:
    if container.settings.redis_cluster:
        raise PairingUnavailable


class CodeNotValid(LookupError):
    """No pairing waits for this user code (never issued, expired, or used)."""


class TooManyMisses(Exception):
    """The parent typed too many wrong codes this hour (``reset``: when the hour ends)."""

    def __init__(self, reset: int, retry_after: int) -> None:
        super().__init__("Too many wrong codes")
        self.limit = MAX_CODE_MISSES_PER_HOUR
        self.reset = reset
        self.retry_after = retry_after


class PollRefused(Exception):
    """A poll of the token route that gets no token, and the RFC 8628 code saying why."""

    def __init__(self, error: PollError) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class NewPairing:
    """What a device shows (``user_code``) and keeps (``device_code``)."""

    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class Issued:
    """The device's token (shown once) and the device it is for."""

    device_token: str
    device: Device


@dataclass(frozen=True)
class DeviceHome:
    """What a device shows its child: the profile, today's limit (with today's bonus) and
    remaining time, and whether a parent has locked watching."""

    device: Device
    profile: Profile
    watched_today_ms: int
    limit_minutes: int
    locked: bool

    @property
    def remaining_minutes(self) -> int:
        return remaining_minutes(self.limit_minutes, self.watched_today_ms)


def _pairing_of(value: bytes | None) -> Pairing | None:
    return _pairing.decode(value) if value else None


def _device_of(value: bytes | None) -> Device | None:
    return _device.decode(value) if value else None


def _kept_seconds(pairing: Pairing, now: datetime) -> int:
    """How long a pairing's key is kept from ``now``: its life, then a while for late polls."""
    left = (pairing.expires_at - now).total_seconds() + EXPIRED_PAIRING_KEPT_SECONDS
    return max(1, math.ceil(left))


async def start_pairing(container: Container, actor: str) -> NewPairing:
    """A new pairing: codes never in use before (a live user code is never handed out twice)."""
    _pairing_available(container)
    while True:
        started = await _try_pairing(container, actor)
        if started is not None:
            return started


async def _try_pairing(container: Container, actor: str) -> NewPairing | None:
    """One draw of codes; ``None`` if a live pairing holds the same user code."""
    device_code, user_code = devices.new_device_code(), devices.new_user_code()
    code_hash = devices.secret_hash(devices.normal_user_code(user_code) or "")
    device_code_hash = devices.secret_hash(device_code)
    pairing_id = secrets.token_hex(8)
    now = container.clock.now()
    pairing, event = devices.start(pairing_id, code_hash, now, actor)

    def decide(current: list[bytes | None]) -> Decision[bool]:
        if any(current):
            return Decision(result=False)
        return Decision(
            result=True,
            events=(event,),
            records={
                pairing_key(device_code_hash): (
                    _encoder.encode(pairing),
                    _kept_seconds(pairing, now),
                ),
                user_code_key(code_hash): (device_code_hash, devices.EXPIRES_IN),
            },
        )

    keys = [pairing_key(device_code_hash), user_code_key(code_hash)]
    if not await container.events.decide(pairing_id, keys, decide):
        return None
    return NewPairing(device_code, user_code, devices.EXPIRES_IN, devices.INTERVAL)


def _misses_key(user_id: int, now: datetime) -> tuple[str, int]:
    """This hour's count of a parent's wrong codes, and when the hour ends (epoch seconds)."""
    hour = math.floor(now.timestamp() / 3600)
    return f"{MISSES_PREFIX}{user_id}:{hour}", (hour + 1) * 3600


async def _check_misses(container: Container, user_id: int, now: datetime) -> None:
    key, ends = _misses_key(user_id, now)
    if int(await container.pipeline.execute("GET", key) or 0) >= MAX_CODE_MISSES_PER_HOUR:
        raise TooManyMisses(ends, max(1, math.ceil(ends - now.timestamp())))


async def _note_miss(container: Container, user_id: int, now: datetime) -> None:
    key, _ends = _misses_key(user_id, now)
    await container.pipeline.execute("INCR", key)
    await container.pipeline.execute("EXPIRE", key, 3600, "NX")  # the hour's first miss


async def confirm_pairing(
    container: Container,
    profile: Profile,
    user_code: str,
    name: str,
    actor: str,
    receipt: Receipt[Device] | None = None,
) -> Device:
    """Pair the device showing ``user_code`` with ``profile`` (the caller's own: checked).

    ``CodeNotValid`` when no pairing waits for that code; ``TooManyMisses`` after too many
    wrong codes this hour from the same parent. With a ``receipt`` the answer is stored with
    the ``device.paired`` event.
    """
    _pairing_available(container)
    now = container.clock.now()
    await _check_misses(container, profile.user_id, now)
    normal = devices.normal_user_code(user_code)
    code_key = user_code_key(devices.secret_hash(normal or ""))
    device_code_hash = await container.pipeline.execute("GET", code_key) if normal else None
    if not device_code_hash:
        await _note_miss(container, profile.user_id, now)
        raise CodeNotValid(user_code)
    while True:
        outcome = await _try_confirm(
            container, profile, code_key, device_code_hash, name, actor, now, receipt
        )
        if outcome is None:
            await _note_miss(container, profile.user_id, now)
            raise CodeNotValid(user_code)
        if isinstance(outcome, Device):
            return outcome


async def _try_confirm(
    container: Container,
    profile: Profile,
    code_key: str,
    device_code_hash: bytes,
    name: str,
    actor: str,
    now: datetime,
    receipt: Receipt[Device] | None,
) -> Device | bool | None:
    """One attempt with a random device id: the device, ``False`` if the id is taken, or
    ``None`` if the code no longer waits (used or expired meanwhile)."""
    device_id = secrets.randbelow(MAX_DEVICE_ID) + 1
    key = pairing_key(device_code_hash.decode())

    def decide(current: list[bytes | None]) -> Decision[Device | bool | None]:
        pairing = _pairing_of(current[1])
        if current[0] != device_code_hash or pairing is None:
            return Decision(result=None)
        if not devices.confirmable(pairing, now):
            return Decision(result=None)
        if current[2] is not None:
            return Decision(result=False)
        confirmed, device, event = devices.confirm(
            pairing,
            device_id=device_id,
            profile_id=profile.id,
            user_id=profile.user_id,
            name=name,
            now=now,
            actor=actor,
        )
        return Decision(
            result=device,
            events=(event,),
            writes={code_key: None, device_key(device_id): _encoder.encode(device)},
            records={key: (_encoder.encode(confirmed), _kept_seconds(confirmed, now))},
            index_scores={profile_devices(profile.id): {str(device_id): now.timestamp()}},
        )

    keys = [code_key, key, device_key(device_id)]
    return await decide_once(container.events, str(profile.id), keys, decide, receipt)


async def collect_token(container: Container, device_code: str) -> Issued:
    """The device's token if its parent has confirmed, once; else ``PollRefused`` saying why.

    Every poll notes its time, so the next one can be told to ``slow_down``.
    """
    _pairing_available(container)
    key = pairing_key(devices.secret_hash(device_code))
    while True:
        outcome = await _try_collect(container, key)
        if isinstance(outcome, Issued):
            return outcome
        if outcome is not None:
            raise PollRefused(outcome)


async def _try_collect(container: Container, key: str) -> Issued | PollError | None:
    """One poll: the token, why there is none, or ``None`` if the pairing was confirmed between
    the read that named the keys and the decision (poll again)."""
    now = container.clock.now()
    seen = _pairing_of(await container.pipeline.execute("GET", key))
    device_id = seen.device_id if seen is not None else None
    keys = [key] if device_id is None else [key, device_key(device_id)]

    def decide(current: list[bytes | None]) -> Decision[Issued | PollError | None]:
        pairing = _pairing_of(current[0])
        if pairing is not None and pairing.device_id != device_id:
            return Decision(result=None)
        device = _device_of(current[1]) if len(current) > 1 else None
        error = devices.poll_error(pairing, device, now)
        if pairing is None or error in ("invalid_grant", "expired_token"):
            return Decision(result=error)
        if error is not None:
            polled = devices.polled(pairing, now)
            kept = _kept_seconds(polled, now)
            return Decision(result=error, records={key: (_encoder.encode(polled), kept)})
        assert device is not None
        token = devices.new_device_token()
        token_hash = devices.secret_hash(token)
        spent, holding, event = devices.issue(pairing, device, token_hash, now)
        stored = _encoder.encode(holding)
        return Decision(
            result=Issued(token, holding),
            events=(event,),
            writes={device_key(holding.device_id): stored, token_key(token_hash): stored},
            records={key: (_encoder.encode(spent), _kept_seconds(spent, now))},
        )

    ordering = str(seen.profile_id) if seen is not None and seen.profile_id else key
    return await container.events.decide(ordering, keys, decide)


async def device_for_token(container: Container, token: str) -> Device | None:
    """The paired device holding ``token``, or ``None`` (unknown or revoked): one ``GET``."""
    return _device_of(
        await container.pipeline.execute("GET", token_key(devices.secret_hash(token)))
    )


async def list_devices(container: Container, profile_id: int) -> list[Device]:
    """The profile's paired devices, oldest first (the caller checked the profile is theirs)."""
    members = await container.pipeline.execute("ZRANGE", profile_devices(profile_id), 0, -1)
    ids = [int(member) for member in members]
    if not ids:
        return []
    values = await container.pipeline.execute("MGET", *[device_key(i) for i in ids])
    return [device for value in values if (device := _device_of(value)) is not None]


async def revoke_device(
    container: Container,
    profile_id: int,
    device_id: int,
    actor: str,
    receipt: Receipt[bool] | None = None,
) -> bool:
    """Unpair a device of ``profile_id``: its token fails from now on. ``False``: no such device.

    The device, its token's key and its index entry go in the step that appends
    ``device.revoked`` (with a ``receipt``, the answer too).
    """
    now = container.clock.now()

    def decide(current: list[bytes | None]) -> Decision[bool]:
        device = _device_of(current[0])
        if device is None or device.profile_id != profile_id:
            return Decision(result=False)
        writes: dict[str, bytes | str | None] = {device_key(device_id): None}
        if device.token_hash:
            writes[token_key(device.token_hash)] = None
        return Decision(
            result=True,
            events=(devices.revoke(device, now, actor),),
            writes=writes,
            index_scores={profile_devices(profile_id): {str(device_id): None}},
        )

    if not 1 <= device_id <= MAX_DEVICE_ID:
        return False
    keys = [device_key(device_id)]
    return await decide_once(container.events, str(profile_id), keys, decide, receipt)


async def revoke_profile_devices(container: Container, profile_id: int, actor: str) -> list[int]:
    """Unpair every device of a profile (its parent deleted it); the ids revoked."""
    revoked = []
    for device in await list_devices(container, profile_id):
        if await revoke_device(container, profile_id, device.device_id, actor):
            revoked.append(device.device_id)
    return revoked


async def device_home(container: Container, device: Device) -> DeviceHome | None:
    """The device's profile and its day so far; ``None`` if the profile is gone."""
    profile = await catalog.get_profile(container, device.user_id, device.profile_id)
    if profile is None:
        return None
    now = container.clock.now()
    watched = await watched_today_ms(container, profile, now)
    policy = await current_policy(container, profile)
    budget = policy_rules.budget_ms(policy, local_date(now, profile.timezone))
    locked = policy_rules.is_locked(policy, now)
    return DeviceHome(device, profile, watched, budget // MS_PER_MINUTE, locked)


async def device_videos(
    container: Container, device: Device, page: Page
) -> tuple[list[Video], int]:
    """One page of the videos the device's child may watch: the parent's whose ``min_age`` is
    at most the child's age, newest first."""
    profile = await catalog.get_profile(container, device.user_id, device.profile_id)
    if profile is None:
        return [], 0
    return await catalog.list_videos(container, device.user_id, page, max_min_age=profile.age)
