"""Where the command side keeps kids-device pairings and devices in Redis, next to the log.

* ``medio:pairing:<sha256 of the device code>``: the ``Pairing`` (JSON), kept a while past its
  expiry so a late poll reads ``expired_token`` rather than an unknown code
* ``medio:pairing-code:<sha256 of the user code>``: that pairing's device-code hash, for the
  parent's confirmation; it lives as long as the code and is deleted when the code is used
* ``medio:device:<id>``: the ``Device`` (JSON), for as long as it is paired
* ``medio:device-token:<sha256 of the token>``: the same ``Device``: what every request made with
  a device token reads (one ``GET``); revocation deletes it with the device
* ``medio:devices:profile:<profile_id>``: the profile's devices by pairing time (sorted set)

Only hashes of codes and tokens appear in key names and values.
"""

from __future__ import annotations

PAIRING_PREFIX = "medio:pairing:"
USER_CODE_PREFIX = "medio:pairing-code:"
DEVICE_PREFIX = "medio:device:"
TOKEN_PREFIX = "medio:device-token:"
PROFILE_DEVICES_PREFIX = "medio:devices:profile:"
# How long a pairing is kept after it expired (polls in that time read ``expired_token``).
EXPIRED_PAIRING_KEPT_SECONDS = 3600


def pairing_key(device_code_hash: str) -> str:
    return f"{PAIRING_PREFIX}{device_code_hash}"


def user_code_key(user_code_hash: str) -> str:
    return f"{USER_CODE_PREFIX}{user_code_hash}"


def device_key(device_id: int) -> str:
    return f"{DEVICE_PREFIX}{device_id}"


def token_key(token_hash: str) -> str:
    return f"{TOKEN_PREFIX}{token_hash}"


def profile_devices(profile_id: int) -> str:
    """The sorted set of a profile's paired devices."""
    return f"{PROFILE_DEVICES_PREFIX}{profile_id}"
