"""``/api/progress/series``: one resume point per TV series (CONTRACT §4a).

The web player of the service behind seed 000 calls these routes; they follow the title
routes of ``api/progress.py`` (bearer token, ``clerkId`` = the token's ``sub``, the progress
error family, the telemetry rate-limit policy). The save is an ordinary ``@post`` route rather
than a raw ASGI one: series saves come once per episode change and on pauses, not on the
title saves' ingest hot path. It reads its body as raw bytes so that
``domain.series_progress.parse_series_save`` reports every invalid field in the seed's
``details`` shape; its OpenAPI body is described in ``api/openapi.py``. Like the title reads,
no dependency is injected (``api/progress.py`` says why): each handler authenticates itself.

This controller's literal ``series`` segment is matched before the title routes' ``{clerk_id}``
(Litestar's router prefers a static segment), so ``/api/progress/series/u1`` is the series list
of ``u1``, never the title ``u1`` of a user called ``series``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, Parameter

from adapters.container import Container
from api.deps import authenticate_subject, services_of
from api.errors import ApiError, FieldError, InvalidFields
from api.idempotency import Idempotent, receipt_of
from api.limits import MSG_MEDIA_TYPE, is_json_media_type
from api.route_facts import route_policy
from domain.progress import InvalidProgress, MalformedBody, check_tmdb_id, parse_limit
from domain.series_progress import SaveSeriesProgress, check_series_id, parse_series_save
from projections.series_resume import SeriesEntry, SeriesPosition
from services.idempotency import REDIS_ANSWERS
from services.series_progress import (
    delete_series_progress,
    get_episode,
    get_series,
    get_series_list,
    save_series_progress,
)

TELEMETRY = route_policy("telemetry")


def _owner(sub: str, clerk_id: str) -> None:
    """Only the user a token belongs to may touch that user's series."""
    if clerk_id != sub:
        raise ApiError(403, "clerkId does not match the authenticated user")


async def _caller(request: Request[Any, Any, Any]) -> tuple[Container, str]:
    """The container and the token's ``sub``, once the bearer token is verified (else 401)."""
    services = services_of(request.app.state)
    claims = await authenticate_subject(services, request.headers.get("authorization"))
    return services.container, claims.sub


async def _owner_of(request: Request[Any, Any, Any], clerk_id: str) -> Container:
    """The container, once the token is verified and its ``sub`` is ``clerk_id`` (else 403)."""
    container, sub = await _caller(request)
    _owner(sub, clerk_id)
    return container


def _no_content(_: None) -> tuple[int, bytes]:
    return 204, b""


def _invalid(exc: InvalidProgress, location: Any) -> InvalidFields:
    return InvalidFields([FieldError(path, msg, location) for path, msg in exc.details.items()])


def _check_path(series_id: str, tmdb_id: str | None = None) -> None:
    """The path's ids must be valid like the body's (else 400 ``Validation failed``)."""
    details: dict[str, str] = {}
    for check, value in ((check_series_id, series_id), (check_tmdb_id, tmdb_id)):
        if value is not None:
            try:
                check(value)
            except InvalidProgress as exc:
                details.update(exc.details)
    if details:
        raise _invalid(InvalidProgress(details), "params")


def _save_body(body: bytes) -> SaveSeriesProgress:
    try:
        return parse_series_save(body)
    except MalformedBody as exc:
        raise ApiError(400, str(exc)) from None
    except InvalidProgress as exc:
        raise _invalid(exc, "body") from None


class SeriesProgressController(Controller):
    """Series resume points of the caller; every route is scoped to the token's ``sub``."""

    path = "/api/progress/series"
    tags = ["progress"]

    @post(
        "/",
        status_code=204,
        opt=TELEMETRY,
        summary="Save the current episode of a series",
        middleware=[Idempotent(REDIS_ANSWERS)],  # Idempotency-Key (CONTRACT §12)
    )
    async def save(self, request: Request[Any, Any, Any]) -> None:
        container, sub = await _caller(request)
        # The guards check the type of non-empty bodies only; a save must have one.
        if not is_json_media_type(request.headers.get("content-type")):
            raise ApiError(415, MSG_MEDIA_TYPE)
        save = _save_body(await request.body())
        _owner(sub, save.clerk_id)
        await save_series_progress(container, sub, save, receipt_of(request.scope, _no_content))

    @get("/{clerk_id:str}", opt=TELEMETRY, summary="The caller's series, newest first")
    async def list_series(
        self,
        request: Request[Any, Any, Any],
        clerk_id: FromPath[str],
        limit: str | None = Parameter(default=None, description="1-500, default 100"),
    ) -> list[SeriesEntry]:
        container = await _owner_of(request, clerk_id)
        try:
            count = parse_limit(limit)
        except InvalidProgress as exc:
            raise _invalid(exc, "query") from None
        return await get_series_list(container, clerk_id, count)

    @get("/{clerk_id:str}/{series_id:str}", opt=TELEMETRY, summary="A series' current episode")
    async def read_series(
        self, request: Request[Any, Any, Any], clerk_id: FromPath[str], series_id: FromPath[str]
    ) -> SeriesPosition:
        container = await _owner_of(request, clerk_id)
        _check_path(series_id)
        position = await get_series(container, clerk_id, series_id)
        if position is None:
            raise ApiError(404, "No series progress found")
        return position

    @get(
        "/{clerk_id:str}/{series_id:str}/{tmdb_id:str}",
        opt=TELEMETRY,
        summary="An episode's position, if it is its series' current one",
    )
    async def read_episode(
        self,
        request: Request[Any, Any, Any],
        clerk_id: FromPath[str],
        series_id: FromPath[str],
        tmdb_id: FromPath[str],
    ) -> SeriesPosition:
        container = await _owner_of(request, clerk_id)
        _check_path(series_id, tmdb_id)
        position = await get_episode(container, clerk_id, series_id, tmdb_id)
        if position is None:
            raise ApiError(404, "Series progress not found")
        return position

    @delete(
        "/{clerk_id:str}/{series_id:str}",
        status_code=204,
        opt=TELEMETRY,
        summary="Forget a series' resume point",
    )
    async def forget(
        self, request: Request[Any, Any, Any], clerk_id: FromPath[str], series_id: FromPath[str]
    ) -> None:
        container = await _owner_of(request, clerk_id)
        _check_path(series_id)
        if not await delete_series_progress(container, clerk_id, clerk_id, series_id):
            raise ApiError(404, "No series progress found")
