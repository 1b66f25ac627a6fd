"""Device tokens (``dev_…``, CONTRACT §14) as credentials: who holds one, and what it may not do.

A device token is checked against the store on every request (``services.devices``: one Redis
``GET`` of its hash), never cached in the process, so a revoked token fails at once on every API
process. Unknown or revoked: 401, like any wrong credential (§3). Known, on a route a device may
not use: 403. The routes a device may use ask for ``device_of`` themselves (``api/devices.py``,
the session start, heartbeat, end and read in ``api/sessions.py``); parental time requests are
the next, and will call the same function.
"""

from __future__ import annotations

from adapters.container import Container
from api.auth import unauthorized
from api.errors import ApiError
from domain.devices import Device, is_device_token
from services import devices

MSG_NOT_FOR_DEVICES = "This route is not available to a paired device"
MSG_DEVICES_ONLY = "This route is for paired devices (Authorization: Bearer dev_…)"

__all__ = ["device_of", "is_device_token", "refuse_device"]


async def device_of(container: Container, token: str) -> Device:
    """The live device holding ``token``, or 401 (unknown, revoked, or its profile deleted)."""
    device = await devices.device_for_token(container, token)
    if device is None:
        raise unauthorized("Invalid token")
    return device


async def refuse_device(container: Container, token: str) -> None:
    """A device token on a route for parents: 401 if it is not live, else 403."""
    await device_of(container, token)
    raise ApiError(403, MSG_NOT_FOR_DEVICES)
