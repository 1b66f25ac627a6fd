"""``/api/progress/series``: one resume point per TV series (CONTRACT §4a).

The web player of the service behind seed 000 calls these routes; they follow the title
routes of ``api/progress.py``: fast routes (``api/fast.py``), a bearer token whose ``sub`` is
the ``clerkId``, the progress error family, the telemetry rate-limit policy. The save's body is
parsed by ``domain.series_progress.parse_series_save``, which reports every invalid field in the
seed's ``details`` shape.

This module's literal ``series`` segment is matched before the title routes' ``{clerk_id}``
(Litestar's router prefers a static segment), so ``/api/progress/series/u1`` is the series list
of ``u1``, never the title ``u1`` of a user called ``series``.
"""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from api.fast import Call, Endpoint, fast_route
from api.progress import LIMIT, PROGRESS, TAGS, invalid, list_limit, save_endpoint
from api.progress_schema import ClerkId, SeriesEntry, SeriesId, SeriesPosition, SeriesProgressSave
from domain.progress import InvalidProgress, check_tmdb_id
from domain.series_progress import SaveSeriesProgress, check_series_id, parse_series_save
from services.series_progress import (
    delete_series_progress,
    get_episode,
    get_series,
    get_series_list,
    save_series_progress,
)

PATH = {"clerk_id": ClerkId, "series_id": SeriesId}


def owner(call: Call[Any], clerk_id: str) -> str:
    """``clerk_id`` if it is the caller's (only a token's ``sub`` may touch that user's series)."""
    if clerk_id != call.caller:
        raise ApiError(403, "clerkId does not match the authenticated user")
    return clerk_id


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
        raise invalid(InvalidProgress(details), "params")


async def _save(call: Call[SaveSeriesProgress]) -> None:
    owner(call, call.body.clerk_id)
    await save_series_progress(call.services.container, call.caller, call.body, call.receipt())


async def _list_series(call: Call[None]) -> list[SeriesEntry]:
    clerk_id = owner(call, call.params["clerk_id"])
    return await get_series_list(call.services.container, clerk_id, list_limit(call))


async def _read_series(call: Call[None]) -> SeriesPosition:
    clerk_id = owner(call, call.params["clerk_id"])
    series_id = call.params["series_id"]
    _check_path(series_id)
    position = await get_series(call.services.container, clerk_id, series_id)
    if position is None:
        raise ApiError(404, "No series progress found")
    return position


async def _read_episode(call: Call[None]) -> SeriesPosition:
    clerk_id = owner(call, call.params["clerk_id"])
    series_id, tmdb_id = call.params["series_id"], call.params["tmdb_id"]
    _check_path(series_id, tmdb_id)
    position = await get_episode(call.services.container, clerk_id, series_id, tmdb_id)
    if position is None:
        raise ApiError(404, "Series progress not found")
    return position


async def _forget(call: Call[None]) -> None:
    clerk_id = owner(call, call.params["clerk_id"])
    series_id = call.params["series_id"]
    _check_path(series_id)
    if not await delete_series_progress(call.services.container, clerk_id, clerk_id, series_id):
        raise ApiError(404, "No series progress found")


save = fast_route(
    "/api/progress/series",
    save_endpoint(
        _save, "Save the current episode of a series", SeriesProgressSave, parse_series_save
    ),
    tags=TAGS,
)
listing = fast_route(
    "/api/progress/series/{clerk_id:str}",
    Endpoint(
        "GET",
        _list_series,
        "The caller's series, newest first",
        PROGRESS,
        answer=list[SeriesEntry],
        path=PATH,
        query={"limit": LIMIT},
    ),
    tags=TAGS,
)
series = fast_route(
    "/api/progress/series/{clerk_id:str}/{series_id:str}",
    Endpoint(
        "GET",
        _read_series,
        "A series' current episode",
        PROGRESS,
        answer=SeriesPosition,
        path=PATH,
    ),
    Endpoint(
        "DELETE",
        _forget,
        "Forget a series' resume point",
        PROGRESS,
        status=204,
        path=PATH,
    ),
    tags=TAGS,
)
episode = fast_route(
    "/api/progress/series/{clerk_id:str}/{series_id:str}/{tmdb_id:str}",
    Endpoint(
        "GET",
        _read_episode,
        "An episode's position, if it is its series' current one",
        PROGRESS,
        answer=SeriesPosition,
        path=PATH,
    ),
    tags=TAGS,
)
ROUTES = [save, listing, series, episode]
