"""Kids devices paired by code (RFC 8628's device flow): the codes and the pairing's rules.

A TV or tablet asks to be paired and shows a short **user code**; the parent types it into
their app for one of their profiles; the device, polling with its long **device code**, then
collects a **device token** once. Every secret is random, handed out once and kept only as its
SHA-256: a store or archive that leaks holds nothing a caller can present.

Pure functions over a ``Pairing`` and the instant the caller read from the clock port, as
``domain.sessions`` does for watch sessions: each returns the new state and the events that
record it, which the store writes together in one atomic step.

* User codes are ``XXXX-XXXX`` from RFC 8628's consonant alphabet (no vowels, so no words; no
  ``0``/``O`` or ``1``/``I`` look-alikes): 20^8 = 2.56 x 10^10 codes.
* A code lives ``EXPIRES_IN`` seconds and is used once: confirming consumes it.
* A device polls at most every ``INTERVAL`` seconds; faster is ``slow_down``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from domain.events import DevicePaired, DevicePairingStarted, DeviceRevoked, DeviceTokenIssued

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: 20 consonants
USER_CODE_LENGTH = 8
EXPIRES_IN = 600  # seconds a pairing waits for its parent (CONTRACT §14)
INTERVAL = 5  # seconds between two polls of the token route
# Two polls sent ``INTERVAL`` apart may arrive a little closer after network jitter; only a gap
# shorter by more than this is ``slow_down``.
POLL_SLACK_SECONDS = 1.0
DEVICE_TOKEN_PREFIX = "dev_"
MAX_NAME_LENGTH = 50
MSG_USER_CODE = "Unknown or expired code"
MSG_NAME = "Name must be between 1 and 50 characters"

# What a poll of the token route answers while no token is due (RFC 8628 §3.5 error codes;
# ``invalid_grant`` for a device code that is unknown or whose token was already collected).
PollError = Literal["authorization_pending", "slow_down", "expired_token", "invalid_grant"]


class Pairing(msgspec.Struct, frozen=True, kw_only=True):
    """A pairing as the command side keeps it, under its device code's hash."""

    pairing_id: str
    user_code_hash: str
    created_at: datetime
    expires_at: datetime
    last_poll_at: datetime | None = None
    # Set when the parent confirmed: the device made for it, on which profile.
    device_id: int | None = None
    profile_id: int | None = None
    issued: bool = False  # the token was collected; the device code is spent


class Device(msgspec.Struct, frozen=True, kw_only=True):
    """A paired device: one profile of one parent, and the hash of its token once collected."""

    device_id: int
    profile_id: int
    user_id: int
    name: str
    created_at: datetime
    token_hash: str = ""


def secret_hash(secret: str) -> str:
    """What is stored of a code or token: each holds enough random bits that a plain hash is
    safe (no salt or stretching needed, unlike for passwords)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_device_code() -> str:
    """The device's own proof that it is the one polling: 256 random bits."""
    return secrets.token_urlsafe(32)


def new_user_code() -> str:
    """A code a child can read off a TV and a parent can type: ``XXXX-XXXX``."""
    letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def new_device_token() -> str:
    """The device's credential (``dev_`` and 256 random bits)."""
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_device_token(token: str) -> bool:
    return token.startswith(DEVICE_TOKEN_PREFIX)


def normal_user_code(typed: object) -> str | None:
    """A typed user code in its stored form (``XXXXXXXX``), or ``None`` if it cannot be one.

    Case, the dash and spaces are forgiven, as a parent copying from a TV expects.
    """
    if not isinstance(typed, str) or len(typed) > 32:
        return None
    letters = typed.upper().replace("-", "").replace(" ", "")
    if len(letters) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in letters):
        return None
    return letters


def device_name(value: object) -> str | None:
    """The parent's name for the device (``"Living room TV"``), trimmed, or ``None`` if bad."""
    if not isinstance(value, str):
        return None
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH or "\x00" in name:
        return None
    return name


def start(
    pairing_id: str, user_code_hash: str, now: datetime, actor: str
) -> tuple[Pairing, DevicePairingStarted]:
    """A new pairing, waiting ``EXPIRES_IN`` seconds for its parent."""
    expires_at = now + timedelta(seconds=EXPIRES_IN)
    pairing = Pairing(
        pairing_id=pairing_id, user_code_hash=user_code_hash, created_at=now, expires_at=expires_at
    )
    return pairing, DevicePairingStarted(
        occurred_at=now, actor=actor, pairing_id=pairing_id, expires_at=expires_at
    )


def confirmable(pairing: Pairing | None, now: datetime) -> bool:
    """The code still waits for a parent: not expired, not confirmed already."""
    return pairing is not None and pairing.device_id is None and now < pairing.expires_at


def confirm(
    pairing: Pairing,
    *,
    device_id: int,
    profile_id: int,
    user_id: int,
    name: str,
    now: datetime,
    actor: str,
) -> tuple[Pairing, Device, DevicePaired]:
    """The parent's confirmation (the caller checked ``confirmable`` and the profile's owner)."""
    confirmed = msgspec.structs.replace(pairing, device_id=device_id, profile_id=profile_id)
    device = Device(
        device_id=device_id, profile_id=profile_id, user_id=user_id, name=name, created_at=now
    )
    event = DevicePaired(
        occurred_at=now,
        actor=actor,
        device_id=device_id,
        pairing_id=pairing.pairing_id,
        profile_id=profile_id,
        user_id=user_id,
        name=name,
    )
    return confirmed, device, event


def poll_error(pairing: Pairing | None, device: Device | None, now: datetime) -> PollError | None:
    """Why a poll at ``now`` gets no token, or ``None`` when the token is due now.

    Checked in this order: an unknown or spent code; a code past its life (also a confirmed one
    never collected in time, or whose device was revoked before it was collected); a poll
    faster than ``INTERVAL``; a code the parent has not confirmed yet.
    """
    if pairing is None or pairing.issued:
        return "invalid_grant"
    if now >= pairing.expires_at or (pairing.device_id is not None and device is None):
        return "expired_token"
    last = pairing.last_poll_at
    if last is not None and (now - last).total_seconds() < INTERVAL - POLL_SLACK_SECONDS:
        return "slow_down"
    if pairing.device_id is None:
        return "authorization_pending"
    return None


def polled(pairing: Pairing, now: datetime) -> Pairing:
    """The pairing after a poll that got no token (the pace is measured from it)."""
    return msgspec.structs.replace(pairing, last_poll_at=now)


def issue(
    pairing: Pairing, device: Device, token_hash: str, now: datetime
) -> tuple[Pairing, Device, DeviceTokenIssued]:
    """The token handed to the device, once: the pairing is spent, the device holds its hash."""
    spent = msgspec.structs.replace(pairing, issued=True, last_poll_at=now)
    holding = msgspec.structs.replace(device, token_hash=token_hash)
    event = DeviceTokenIssued(
        occurred_at=now,
        actor=f"device:{device.device_id}",
        device_id=device.device_id,
        profile_id=device.profile_id,
        token_hash=token_hash,
    )
    return spent, holding, event


def revoke(device: Device, now: datetime, actor: str) -> DeviceRevoked:
    """The event of a parent revoking ``device``."""
    return DeviceRevoked(
        occurred_at=now,
        actor=actor,
        device_id=device.device_id,
        profile_id=device.profile_id,
        user_id=device.user_id,
    )
