"""``/api/progress``: save, read, list and delete resume positions (seed 000, CONTRACT §4).

The save is the ingest hot path, so it is a raw ASGI handler (Litestar's ``@asgi``) rather
than an ``@post`` route. Litestar still routes it, runs its exception handlers on whatever it
raises (the same error shapes as every route) and the request-id layer around it; what it skips
is the HTTP route machinery: the ``Request`` object, the signature model, the response object,
and the three guard middlewares, whose checks it runs inline (``api.guards.admit``). Measured on
one API process under wrk at 64 connections (2 cores shared with wrk and Redis), the
``@post`` route cost 246-273 µs of CPU per request and this handler 169-188 µs; an ``@post``
route with the guards inline but the route machinery kept still cost 250-274 µs. Its OpenAPI
operation is written out in ``api/openapi.py`` (Litestar does not document ASGI handlers).

The body is decoded from raw bytes by ``domain.progress.parse_save`` rather than by Litestar,
so every invalid field is reported in the seed's ``details`` shape.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, asgi, delete, get
from litestar.exceptions import MethodNotAllowedException
from litestar.params import FromPath, Parameter
from litestar.types import Receive, Scope, Send

from adapters.container import Container
from api.deps import authenticate_subject, header_value, services_of
from api.errors import ApiError, FieldError, InvalidFields
from api.guards import admit
from api.idempotency import HEADER as IDEMPOTENCY_KEY
from api.idempotency import receipt_of, run_once
from api.limits import MSG_MEDIA_TYPE, is_json_media_type, replay
from api.route_facts import inline_guards, route_policy
from domain.progress import (
    InvalidProgress,
    MalformedBody,
    SaveProgress,
    check_clerk_id,
    check_tmdb_id,
    parse_limit,
    parse_save,
)
from projections.resume import (
    ResumeEntry,
    ResumePosition,
    ResumeProjection,
    read_position,
)
from services.idempotency import REDIS_ANSWERS
from services.progress import delete_progress, list_progress, save_progress
from services.read_your_writes import read_own

RESUME = ResumeProjection.name


def _owner(sub: str, clerk_id: str, location: Any = "params") -> None:
    """Only the user a token belongs to may touch that user's progress (a valid ``clerkId``)."""
    try:
        check_clerk_id(clerk_id)
    except InvalidProgress as exc:
        raise _invalid(exc, location) from None
    if clerk_id != sub:
        raise ApiError(403, "clerkId does not match the authenticated user")


async def _caller_of(request: Request[Any, Any, Any], clerk_id: str) -> Container:
    """The container, once the bearer token is verified and its ``sub`` owns ``clerk_id``.

    Progress routes need only the ``sub``, so the user row is noted in the background (as the
    save does) instead of awaited, and no dependency is injected: Litestar resolves several
    async dependencies in an anyio task group, a measurable share of a read's cost.
    """
    services = services_of(request.app.state)
    claims = await authenticate_subject(services, request.headers.get("authorization"))
    _owner(claims.sub, clerk_id)
    return services.container


def _invalid(exc: InvalidProgress, location: Any = "body") -> InvalidFields:
    return InvalidFields([FieldError(path, msg, location) for path, msg in exc.details.items()])


def _tmdb_id(tmdb_id: str) -> str:
    try:
        return check_tmdb_id(tmdb_id)
    except InvalidProgress as exc:
        raise _invalid(exc, "params") from None


def _save_body(body: bytes) -> SaveProgress:
    try:
        return parse_save(body)
    except MalformedBody as exc:
        raise ApiError(400, str(exc)) from None
    except InvalidProgress as exc:
        raise _invalid(exc) from None


def _no_content(_: None) -> tuple[int, bytes]:
    return 204, b""


async def _save(scope: Scope, body: bytes, send: Send) -> None:
    # The guards check the type of non-empty bodies only; a save must have one.
    if not is_json_media_type(header_value(scope, b"content-type")):
        raise ApiError(415, MSG_MEDIA_TYPE)
    services = services_of(scope["app"].state)
    claims = await authenticate_subject(services, header_value(scope, b"authorization"))
    save = _save_body(body)
    _owner(claims.sub, save.clerk_id, "body")
    await save_progress(services.container, claims.sub, save, receipt_of(scope, _no_content))
    # Fresh messages each time: outer layers add their headers to the message they get.
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _save_keyed(scope: Scope, receive: Receive, send: Send) -> None:
    """``_save`` as the app ``run_once`` runs: the admitted body comes back through ``receive``."""
    message = await receive()
    await _save(scope, message["body"] if message["type"] == "http.request" else b"", send)


class ProgressController(Controller):
    """Resume positions of the caller; every route is scoped to the token's ``sub``."""

    path = "/api/progress"
    tags = ["progress"]

    @asgi("/", opt=inline_guards("telemetry"), copy_scope=False)
    async def save(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST``: save a resume position (appends ``progress.saved``), 204."""
        if scope.get("method") != "POST":
            raise MethodNotAllowedException(headers={"Allow": "POST"})
        body = await admit(scope, receive, "telemetry")
        if header_value(scope, IDEMPOTENCY_KEY) is None:
            await _save(scope, body, send)
        else:  # a retry-safe save (CONTRACT §12), after the guards like on every route
            await run_once(scope, replay(body, receive), send, _save_keyed, REDIS_ANSWERS)

    @get(
        "/{clerk_id:str}/{tmdb_id:str}",
        summary="The resume position of one title",
        opt=route_policy("telemetry"),
    )
    async def read(
        self, request: Request[Any, Any, Any], clerk_id: FromPath[str], tmdb_id: FromPath[str]
    ) -> ResumePosition:
        container = await _caller_of(request, clerk_id)
        title = _tmdb_id(tmdb_id)
        position = await read_own(
            container, clerk_id, RESUME, lambda: read_position(container.pipeline, clerk_id, title)
        )
        if position is None:
            raise ApiError(404, "Progress not found")
        return position

    @get(
        "/{clerk_id:str}",
        summary="The caller's resume positions, newest first",
        opt=route_policy("telemetry"),
    )
    async def list_titles(
        self,
        request: Request[Any, Any, Any],
        clerk_id: FromPath[str],
        limit: str | None = Parameter(default=None, description="1-500, default 100"),
    ) -> list[ResumeEntry]:
        container = await _caller_of(request, clerk_id)
        try:
            count = parse_limit(limit)
        except InvalidProgress as exc:
            raise _invalid(exc, "query") from None
        return await list_progress(container, clerk_id, count)

    @delete(
        "/{clerk_id:str}/{tmdb_id:str}",
        status_code=204,
        summary="Forget a resume position",
        opt=route_policy("telemetry"),
    )
    async def forget(
        self, request: Request[Any, Any, Any], clerk_id: FromPath[str], tmdb_id: FromPath[str]
    ) -> None:
        container = await _caller_of(request, clerk_id)
        if not await delete_progress(container, clerk_id, clerk_id, _tmdb_id(tmdb_id)):
            raise ApiError(404, "Progress not found")
