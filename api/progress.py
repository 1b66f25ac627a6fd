"""``/api/progress``: save, read, list and delete resume positions (seed 000, CONTRACT §4).

The save body is decoded from raw bytes by ``domain.progress.parse_save`` rather than by
Litestar, so every invalid field is reported in the seed's ``details`` shape and the ingest hot
path stays one msgspec decode, one cached token check and one ``XADD``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, Parameter

from api.deps import ContainerDep, PrincipalDep, authenticate_subject, services_of
from api.errors import ApiError, FieldError, InvalidFields
from domain.progress import (
    InvalidProgress,
    MalformedBody,
    SaveProgress,
    check_tmdb_id,
    parse_limit,
    parse_save,
)
from medio.progress import delete_progress, save_progress
from medio.resume_store import ResumeEntry, ResumePosition, list_positions, read_position

JSON_TYPES = ("application/json", "text/plain")  # text/plain: navigator.sendBeacon on unload


def _owner(sub: str, clerk_id: str) -> None:
    """Only the user a token belongs to may touch that user's progress."""
    if clerk_id != sub:
        raise ApiError(403, "clerkId does not match the authenticated user")


def _invalid(exc: InvalidProgress, location: Any = "body") -> InvalidFields:
    return InvalidFields([FieldError(path, msg, location) for path, msg in exc.details.items()])


def _tmdb_id(tmdb_id: str) -> str:
    try:
        return check_tmdb_id(tmdb_id)
    except InvalidProgress as exc:
        raise _invalid(exc, "params") from None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_TYPES or media_type.endswith("+json")


async def _save_body(request: Request[Any, Any, Any]) -> SaveProgress:
    if not _is_json(request.headers.get("content-type")):
        raise ApiError(415, "Content-Type must be application/json")
    try:
        return parse_save(await request.body())
    except MalformedBody as exc:
        raise ApiError(400, str(exc)) from None
    except InvalidProgress as exc:
        raise _invalid(exc) from None


class ProgressController(Controller):
    """Resume positions of the caller; every route is scoped to the token's ``sub``."""

    path = "/api/progress"
    tags = ["progress"]

    @post("/", status_code=204, summary="Save a resume position (appends progress.saved)")
    async def save(self, request: Request[Any, Any, Any]) -> None:
        # The ingest hot path: no dependency injection (Litestar resolves two dependencies in
        # an anyio task group, a visible share of this route's cost), the same ``authenticate``.
        claims = await authenticate_subject(request)
        save = await _save_body(request)
        _owner(claims.sub, save.clerk_id)
        await save_progress(services_of(request.app.state).container, claims.sub, save)

    @get("/{clerk_id:str}/{tmdb_id:str}", summary="The resume position of one title")
    async def read(
        self,
        clerk_id: FromPath[str],
        tmdb_id: FromPath[str],
        container: ContainerDep,
        principal: PrincipalDep,
    ) -> ResumePosition:
        _owner(principal.sub, clerk_id)
        position = await read_position(container.redis, clerk_id, _tmdb_id(tmdb_id))
        if position is None:
            raise ApiError(404, "Progress not found")
        return position

    @get("/{clerk_id:str}", summary="The caller's resume positions, newest first")
    async def list_titles(
        self,
        clerk_id: FromPath[str],
        container: ContainerDep,
        principal: PrincipalDep,
        limit: str | None = Parameter(default=None, description="1-500, default 100"),
    ) -> list[ResumeEntry]:
        _owner(principal.sub, clerk_id)
        try:
            count = parse_limit(limit)
        except InvalidProgress as exc:
            raise _invalid(exc, "query") from None
        return await list_positions(container.redis, clerk_id, count, container.clock.now())

    @delete("/{clerk_id:str}/{tmdb_id:str}", status_code=204, summary="Forget a resume position")
    async def forget(
        self,
        clerk_id: FromPath[str],
        tmdb_id: FromPath[str],
        container: ContainerDep,
        principal: PrincipalDep,
    ) -> None:
        _owner(principal.sub, clerk_id)
        if not await delete_progress(container, principal.sub, clerk_id, _tmdb_id(tmdb_id)):
            raise ApiError(404, "Progress not found")
