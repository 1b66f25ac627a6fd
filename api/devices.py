"""Kids devices (CONTRACT §14): pairing by code as TVs do (RFC 8628), and what a device may do.

* ``/api/devices``: the device's side of pairing, no credential (it has none yet): ``pair``
  hands out a code pair, ``token`` is polled until the parent confirms. Neither is CSRF-able
  (they create nothing a parent has not confirmed); ``pair`` counts under the public rate
  policy, ``token`` is paced by ``slow_down`` instead.
* ``/api/profiles/:id/devices``: the parent confirms a code for one of their profiles, lists
  and revokes that profile's devices.
* ``/api/device``: what a device token reads: its profile's day and the videos it may play.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import bearer_token, unauthorized
from api.catalog_schema import VideoList, not_found, page_query, video_out
from api.deps import ContainerDep, PrincipalDep, device_of
from api.errors import ApiError, FieldError, InvalidFields, SpecialError
from api.idempotency import Idempotent, fixed_answer, receipt_of
from api.openapi_parts import DEVICE_CONFIRM, DEVICE_TOKEN, PAGING
from api.route_facts import facts
from domain.catalog import Profile, page_metadata
from domain.devices import MSG_NAME, MSG_USER_CODE, Device, device_name, is_device_token
from domain.sessions import whole_minutes
from domain.timestamps import iso_ms
from services import catalog, devices
from services.idempotency import REDIS_ANSWERS

DEFAULT_LIMIT = 20
TOO_MANY_CODES = "Too many wrong codes. Please try again later."
MSG_DEVICES_ONLY = "This route is for paired devices (Authorization: Bearer dev_…)"


# On Redis Cluster (services.devices.PairingUnavailable); docs/operations.md says why.
MSG_NO_PAIRING = "Pairing kids devices is not available on this deployment (Redis Cluster) yet"


class PairOut(msgspec.Struct, frozen=True):
    device_code: str
    user_code: str
    expires_in: int
    interval: int


class TokenIn(msgspec.Struct, frozen=True):
    device_code: str


class TokenOut(msgspec.Struct, frozen=True):
    device_token: str
    device_id: int
    profile_id: int


class ConfirmIn(msgspec.Struct, frozen=True):
    user_code: str
    name: str


class DeviceOut(msgspec.Struct, frozen=True):
    device_id: int
    profile_id: int
    name: str
    created_at: str


class DeviceList(msgspec.Struct, frozen=True):
    devices: list[DeviceOut]


class DeviceHomeOut(msgspec.Struct, frozen=True):
    """``GET /api/device``: the child's profile and today's budget, as the device shows them."""

    device_id: int
    device_name: str
    profile_id: int
    name: str
    age: int
    daily_limit_minutes: int  # today's: the day's limit with today's bonus
    watched_today_minutes: int
    remaining_minutes: int
    bedtime: dict[str, Any] | None  # as the parent set it (CONTRACT §13)
    locked: bool


def _device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        profile_id=device.profile_id,
        name=device.name,
        created_at=iso_ms(device.created_at),
    )


_encoder = msgspec.json.Encoder()


def _answer_device(device: Device) -> tuple[int, bytes]:
    return 201, _encoder.encode(_device_out(device))


async def _paired_device(request: Request[Any, Any, Any], container: ContainerDep) -> Device:
    """The device whose token the request carries: 401 without a live one, 403 for a parent."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise unauthorized()
    if not is_device_token(token):
        raise ApiError(403, MSG_DEVICES_ONLY)
    return await device_of(container, token)


async def _own_profile(container: ContainerDep, user_id: int, profile_id: int) -> Profile:
    profile = await catalog.get_profile(container, user_id, profile_id)
    if profile is None:
        raise not_found("Profile")
    return profile


class DevicePairingController(Controller):
    """The device's side of pairing: get a code, poll for the token."""

    path = "/api/devices"
    tags = ["devices"]

    @post(
        "/pair",
        status_code=201,
        summary="Start pairing a kids device: a code to show, a code to poll with",
        opt=facts(policy="public", public=True, csrf=False),
    )
    async def pair(self, container: ContainerDep) -> PairOut:
        try:
            started = await devices.start_pairing(container, "device-pairing")
        except devices.PairingUnavailable:
            raise ApiError(501, MSG_NO_PAIRING) from None
        return PairOut(
            device_code=started.device_code,
            user_code=started.user_code,
            expires_in=started.expires_in,
            interval=started.interval,
        )

    @post(
        "/token",
        status_code=200,
        summary="Poll for the device token (400 authorization_pending until a parent confirms)",
        opt=facts(
            public=True, csrf=False, rate_limited=False, device_flow=True, json_body=DEVICE_TOKEN
        ),
    )
    async def token(self, container: ContainerDep, data: JSONBody[TokenIn]) -> TokenOut:
        try:
            issued = await devices.collect_token(container, data.device_code)
        except devices.PollRefused as refused:
            raise SpecialError(400, {"error": refused.error}) from None
        except devices.PairingUnavailable:
            raise ApiError(501, MSG_NO_PAIRING) from None
        return TokenOut(
            device_token=issued.device_token,
            device_id=issued.device.device_id,
            profile_id=issued.device.profile_id,
        )


class ProfileDevicesController(Controller):
    """A parent pairs, lists and revokes the devices of one of their profiles."""

    path = "/api/profiles/{profile_id:int}/devices"
    tags = ["devices"]

    @post(
        status_code=201,
        summary="Confirm a device's code for this profile",
        opt=facts(json_body=DEVICE_CONFIRM),
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        data: JSONBody[ConfirmIn],
    ) -> DeviceOut:
        profile = await _own_profile(container, principal.user_id, profile_id)
        name = device_name(data.name)
        if name is None:
            raise InvalidFields([FieldError("name", MSG_NAME)])
        try:
            device = await devices.confirm_pairing(
                container,
                profile,
                data.user_code,
                name,
                principal.sub,
                receipt_of(request.scope, _answer_device),
            )
        except devices.PairingUnavailable:
            raise ApiError(501, MSG_NO_PAIRING) from None
        except devices.CodeNotValid:
            raise InvalidFields([FieldError("user_code", MSG_USER_CODE)]) from None
        except devices.TooManyMisses as exc:
            body = {"message": TOO_MANY_CODES, "retryAfter": exc.retry_after}
            headers = {
                "Retry-After": str(exc.retry_after),
                "X-RateLimit-Limit": str(exc.limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(exc.reset),
            }
            raise SpecialError(429, body, headers) from None
        return _device_out(device)

    @get(summary="The profile's paired devices, oldest first")
    async def list_devices(
        self, container: ContainerDep, principal: PrincipalDep, profile_id: FromPath[int]
    ) -> DeviceList:
        profile = await _own_profile(container, principal.user_id, profile_id)
        found = await devices.list_devices(container, profile.id)
        return DeviceList(devices=[_device_out(d) for d in found])

    @delete(
        "/{device_id:int}",
        summary="Revoke a device: its token fails at once",
        middleware=[Idempotent(REDIS_ANSWERS)],
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        principal: PrincipalDep,
        profile_id: FromPath[int],
        device_id: FromPath[int],
    ) -> Response[None]:
        profile = await _own_profile(container, principal.user_id, profile_id)
        receipt = receipt_of(request.scope, fixed_answer(204))
        if not await devices.revoke_device(
            container, profile.id, device_id, principal.sub, receipt
        ):
            raise not_found("Device")
        return Response(content=None, status_code=204)


class DeviceController(Controller):
    """What a paired device reads with its own token."""

    path = "/api/device"
    tags = ["devices"]

    @get(summary="The device's profile and today's remaining time (device token)")
    async def home(self, request: Request[Any, Any, Any], container: ContainerDep) -> DeviceHomeOut:
        device = await _paired_device(request, container)
        home = await devices.device_home(container, device)
        if home is None:
            raise unauthorized("Invalid token")
        profile = home.profile
        return DeviceHomeOut(
            device_id=device.device_id,
            device_name=device.name,
            profile_id=profile.id,
            name=profile.name,
            age=profile.age,
            daily_limit_minutes=home.limit_minutes,
            watched_today_minutes=whole_minutes(home.watched_today_ms),
            remaining_minutes=home.remaining_minutes,
            bedtime=profile.bedtime,
            locked=home.locked,
        )

    @get(
        "/videos",
        summary="The videos the device's child may watch, newest first (paged)",
        opt=facts(query=PAGING),
    )
    async def videos(
        self,
        request: Request[Any, Any, Any],
        container: ContainerDep,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
    ) -> VideoList:
        device = await _paired_device(request, container)
        wanted = page_query(page, limit, DEFAULT_LIMIT)
        found, total = await devices.device_videos(container, device, wanted)
        return VideoList(
            videos=[video_out(v) for v in found], metadata=page_metadata(wanted, total)
        )
