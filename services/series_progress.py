"""Series progress use cases (CONTRACT §4a): each write records one event, each read one query.

A save depends on no stored state, so it is a single ``XADD`` in the user's stream (the user
is the ordering key, so one user's saves project in the order they were appended); the series
resume projection (``projections.series_resume``) does the rest. Each append notes itself as
the user's last write, and every read, and the existence check of a delete, waits for the
series projection to pass that write (``services.read_your_writes``): a player that saves and
refetches at once sees its save, and a delete right after a save finds it. For a user with
nothing pending, a read's check travels in the same round trip as its first command.
"""

from __future__ import annotations

from adapters.container import Container
from domain.series_progress import (
    SaveSeriesProgress,
    series_progress_deleted,
    series_progress_saved,
)
from projections.series_resume import (
    SeriesEntry,
    SeriesPosition,
    SeriesResumeProjection,
    current_episode,
    listed_series,
    read_episode,
    read_series,
    version_key,
)
from services.idempotency import Receipt
from services.progress import append_user_write, delete_if_present, read_list
from services.read_your_writes import read_own

PROJECTION = SeriesResumeProjection.name

__all__ = [  # the answers' types, for the API to document
    "SeriesEntry",
    "SeriesPosition",
    "delete_series_progress",
    "get_episode",
    "get_series",
    "get_series_list",
    "save_series_progress",
]


async def save_series_progress(
    container: Container,
    actor: str,
    save: SaveSeriesProgress,
    receipt: Receipt[None] | None = None,
) -> None:
    """Append ``series_progress.saved`` stamped with the server clock.

    With a ``receipt`` (a retry-safe save, CONTRACT §12) the event and the answer are written
    together as for a title save (``services.progress.save_progress``).
    """
    event = series_progress_saved(save, actor, container.clock.now())
    await append_user_write(container, save.clerk_id, event, receipt)


async def delete_series_progress(
    container: Container, actor: str, clerk_id: str, series_id: str
) -> bool:
    """Append ``series_progress.deleted`` if the series has a current episode; ``False`` when
    there is nothing to delete."""

    async def present() -> bool:
        return await current_episode(container.pipeline, clerk_id, series_id) is not None

    return await delete_if_present(
        container,
        clerk_id,
        PROJECTION,
        present,
        lambda now: series_progress_deleted(clerk_id, series_id, actor, now),
    )


async def get_series(container: Container, clerk_id: str, series_id: str) -> SeriesPosition | None:
    """The series' current episode and position."""
    return await read_own(
        container,
        clerk_id,
        PROJECTION,
        lambda: read_series(container.pipeline, clerk_id, series_id),
    )


async def get_episode(
    container: Container, clerk_id: str, series_id: str, tmdb_id: str
) -> SeriesPosition | None:
    """The episode's position, when it is the current one of its series."""
    return await read_own(
        container,
        clerk_id,
        PROJECTION,
        lambda: read_episode(container.pipeline, clerk_id, series_id, tmdb_id),
    )


async def get_series_list(container: Container, clerk_id: str, limit: int) -> list[SeriesEntry]:
    """The user's series, newest first (kept per process as ``services.progress.list_progress``)."""
    return await read_list(
        container,
        clerk_id,
        limit,
        PROJECTION,
        version_key,
        lambda now: listed_series(container.pipeline, clerk_id, limit, now),
    )
