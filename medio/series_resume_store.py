"""The read side of series progress: one series, one episode, or a user's series, newest first.

Reads only what the series resume projection (``projections.series_resume``) wrote, plus keys
left by the origin service: one episode is read from its own key, so an origin key is readable
before ``medio progress import`` indexed it. A list walks the user's index, then fetches the
current episodes and their keys: three round trips whose size follows that user's series,
never the keyspace. Reads go through the shared ``AutoPipeline`` (as ``medio.resume_store``
does), so their first command travels with their read-your-writes check.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec

from domain.progress import RESUME_TTL_MS, epoch_ms
from medio.autopipeline import AutoPipeline
from projections.redis_commands import text
from projections.series_resume import current_key, index_key, series_key

log = logging.getLogger("medio.series_resume")


class SeriesPosition(msgspec.Struct, frozen=True, rename="camel"):
    """The current episode of a series, as the origin's web player reads it."""

    current_time: float | int
    series_id: str
    tmdb_id: str
    updated_at: str


class SeriesEntry(msgspec.Struct, frozen=True, rename="camel"):
    """One row of ``GET /api/progress/series/:clerkId``."""

    series_id: str
    tmdb_id: str
    current_time: float | int
    updated_at: str


class _Stored(msgspec.Struct, frozen=True, rename="camel"):
    """The stored value; its ids are taken from the key (the origin may have stored numbers)."""

    current_time: float | int
    updated_at: str


_stored_decoder = msgspec.json.Decoder(_Stored)


def _stored(key: str, raw: Any) -> _Stored | None:
    if raw is None:
        return None
    try:
        return _stored_decoder.decode(raw)
    except msgspec.DecodeError:
        log.warning("unreadable series resume value", extra={"key": key})
        return None


async def read_episode(
    redis: AutoPipeline, clerk_id: str, series_id: str, tmdb_id: str
) -> SeriesPosition | None:
    """The episode's position if it is its series' current one, else ``None``.

    Only the current episode of a series has a key (the projection deletes the others).
    """
    key = series_key(clerk_id, series_id, tmdb_id)
    stored = _stored(key, await redis.execute("GET", key))
    if stored is None:
        return None
    return SeriesPosition(stored.current_time, series_id, tmdb_id, stored.updated_at)


async def current_episode(redis: AutoPipeline, clerk_id: str, series_id: str) -> str | None:
    """The ``tmdbId`` of the series' current episode, or ``None`` (never saved, deleted,
    finished, expired)."""
    raw = await redis.execute("GET", current_key(clerk_id, series_id))
    return None if raw is None else text(raw)


async def read_series(redis: AutoPipeline, clerk_id: str, series_id: str) -> SeriesPosition | None:
    """The current episode of the series and its position, or ``None``."""
    tmdb_id = await current_episode(redis, clerk_id, series_id)
    if tmdb_id is None:
        return None
    return await read_episode(redis, clerk_id, series_id, tmdb_id)


async def list_series(
    redis: AutoPipeline, clerk_id: str, limit: int, now: datetime
) -> list[SeriesEntry]:
    """Up to ``limit`` of the user's series, newest ``updatedAt`` first, unexpired only."""
    oldest_live = f"({epoch_ms(now) - RESUME_TTL_MS}"  # exclusive: at exactly 30 days it lapsed
    members: list[Any] = await redis.execute(
        "ZREVRANGEBYSCORE", index_key(clerk_id), "+inf", oldest_live, "LIMIT", 0, limit
    )
    if not members:
        return []
    series_ids = [text(m) for m in members]
    episodes = await redis.execute("MGET", *[current_key(clerk_id, s) for s in series_ids])
    current = [(s, text(e)) for s, e in zip(series_ids, episodes, strict=True) if e is not None]
    if not current:
        return []
    keys = [series_key(clerk_id, s, e) for s, e in current]
    entries = []
    for (series_id, tmdb_id), key, raw in zip(
        current, keys, await redis.execute("MGET", *keys), strict=True
    ):
        stored = _stored(key, raw)
        if stored is not None:
            entries.append(SeriesEntry(series_id, tmdb_id, stored.current_time, stored.updated_at))
    return entries
