"""Dependency providers shared by the controllers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.types import Scope, Send

from api.auth import Claims, Principal, TokenVerifier, bearer_token, unauthorized
from api.csrf_tokens import CsrfTokens
from api.errors import ApiError
from domain.devices import Device, is_device_token
from services import devices
from services.container import Container
from services.users import UserDirectory


class Services:
    """Per-process API services built on the container at start-up."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.verifier = TokenVerifier(container.settings)
        self.users = UserDirectory(container)
        self.csrf = CsrfTokens(container.settings)


def services_of(state: State) -> Services:
    services: Services = state.services
    return services


async def provide_container(state: State) -> Container:
    return services_of(state).container


async def authenticate(request: Request[Any, Any, Any], token: str | None) -> Principal:
    """The caller of a bearer token, or 401."""
    if token is None:
        raise unauthorized()
    return await principal_of(services_of(request.app.state), token)


async def principal_of(services: Services, token: str) -> Principal:
    """The caller of a bearer token (its user row made sure of), or 401 (403: a device's)."""
    if is_device_token(token):
        await refuse_device(services.container, token)
    claims = await services.verifier.verify(token)
    user_id = await services.users.user_id(claims.sub)
    return Principal(user_id=user_id, sub=claims.sub, role=claims.role)


# Device tokens (``dev_…``, CONTRACT §14) ------------------------------------------------------
# Checked against the store on every request (``services.devices``: one Redis ``GET`` of the
# token's hash), never cached in the process, so a revoked token fails at once on every API
# process. Unknown or revoked: 401, like any wrong credential (§3); known, on a route a device
# may not use: 403. The routes a device may use call ``device_of`` themselves (``api/devices.py``,
# the session routes in ``api/sessions.py``).

MSG_NOT_FOR_DEVICES = "This route is not available to a paired device"


async def device_of(container: Container, token: str) -> Device:
    """The live device holding ``token``, or 401 (unknown or revoked)."""
    device = await devices.device_for_token(container, token)
    if device is None:
        raise unauthorized("Invalid token")
    return device


async def refuse_device(container: Container, token: str) -> None:
    """A device token on a route for parents: 401 if it is not live, else 403."""
    await device_of(container, token)
    raise ApiError(403, MSG_NOT_FOR_DEVICES)


def header_value(scope: Scope, name: bytes) -> str | None:
    """A request header's value (``name`` in lower case), for raw ASGI handlers."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_json(send: Send, status: int, body: bytes) -> None:
    """A JSON response from a raw ASGI handler (fresh messages: outer layers add headers)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def authenticate_subject(services: Services, authorization: str | None) -> Claims:
    """The verified claims of an ``Authorization`` header, or 401, for routes that need only the
    ``sub`` (ingest): the user row is made sure of in the background instead of awaited."""
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized()
    if is_device_token(token):
        await refuse_device(services.container, token)
    claims = await services.verifier.verify(token)
    services.users.note(claims.sub)
    return claims


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return await authenticate(request, bearer_token(request.headers.get("authorization")))


ContainerDep = NamedDependency[Container]
PrincipalDep = NamedDependency[Principal]

dependencies = {
    "container": Provide(provide_container),
    "principal": Provide(provide_principal),
}
