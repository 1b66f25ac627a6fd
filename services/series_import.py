"""``medio progress import``, series part: index the origin service's ``series_resume:*`` keys.

The service behind seed 000 wrote ``series_resume:{clerkId}:{seriesId}:{tmdbId}`` =
``{"currentTime", "seriesId", "tmdbId", "updatedAt"}`` with a 30-day TTL and no index a list
could walk. As for title keys (``services.progress_import``), this one-off import scans for them
and appends a ``series_progress.saved`` per key, stamped with the key's own ``updatedAt``; the
series projector then rewrites the key with the same value and expiry, indexes the series, and
keeps only the newest episode of each series. Running it twice appends nothing new: a key whose
series the index already holds at that ``updatedAt`` (or later) is skipped.
"""

from __future__ import annotations

import math

import msgspec

from adapters.container import Container
from domain.events import SeriesProgressSaved
from domain.progress import valid_tmdb_id
from projections.series_resume import index_key
from services.progress_import import IMPORT_ACTOR, ImportReport, KeyKind, dated, import_keys

KEY_PREFIX = "series_resume:"


class OriginValue(msgspec.Struct, rename="camel"):
    """The JSON the origin service stored (its ids may be numbers)."""

    current_time: float
    series_id: str | int | None = None
    tmdb_id: str | int | None = None
    updated_at: str | None = None


def split_key(key: str, value: OriginValue) -> tuple[str, str, str] | None:
    """``(clerkId, seriesId, tmdbId)`` of a series key.

    Clerk ids contain no ``:``, but series and episode ids may, so the ids come from the value
    (which must name this key); a value without them is read only when one ``:`` is left.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    clerk_id, sep, rest = key[len(KEY_PREFIX) :].partition(":")
    if not (sep and clerk_id):
        return None
    if value.series_id is not None and value.tmdb_id is not None:
        series_id, tmdb_id = str(value.series_id), str(value.tmdb_id)
        if rest != f"{series_id}:{tmdb_id}":
            return None
    elif rest.count(":") == 1:
        series_id, _, tmdb_id = rest.partition(":")
    else:
        return None
    if not (valid_tmdb_id(series_id) and valid_tmdb_id(tmdb_id)):
        return None
    return clerk_id, series_id, tmdb_id


def read_origin(key: str, raw: bytes | None, expire_ms: int) -> SeriesProgressSaved | None:
    """The save of the resume point stored under ``key``, or ``None`` if it is not one the origin
    wrote.

    It occurred at the value's ``updatedAt``; a value without one is dated 30 days before its
    expiry (both were set at once).
    """
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw, type=OriginValue)
    except msgspec.DecodeError:
        return None
    names = split_key(key, value)
    if names is None or not (math.isfinite(value.current_time) and value.current_time >= 0):
        return None
    updated_at = dated(value.updated_at, expire_ms)
    if updated_at is None:
        return None
    clerk_id, series_id, tmdb_id = names
    return SeriesProgressSaved(
        occurred_at=updated_at,
        actor=IMPORT_ACTOR,
        clerk_id=clerk_id,
        series_id=series_id,
        tmdb_id=tmdb_id,
        current_time=value.current_time,
    )


SERIES_KEYS = KeyKind(
    KEY_PREFIX, read_origin, lambda saved: (index_key(saved.clerk_id), saved.series_id)
)


async def import_series_keys(container: Container, dry_run: bool = False) -> ImportReport:
    """Append ``series_progress.saved`` for every unindexed live origin series key."""
    return await import_keys(container, SERIES_KEYS, dry_run)
