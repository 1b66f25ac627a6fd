"""``medio progress import``: bring resume keys of the Express service into the event log.

The Express service wrote ``resume:{clerkId}:{tmdbId}`` = ``{"currentTime", "updatedAt"}``
with a 30-day TTL and kept no index, so those positions can be read one by one but never
listed. This one-off import scans the keyspace (its only job; the API never scans) and
appends a ``progress.saved`` per key, stamped with the key's own ``updatedAt``. The resume
projector then rewrites the same key with the same value and expiry and indexes it, and
because the positions are now events, a replay rebuilds them like any other save.

Running it twice appends nothing new: a key whose title the index already holds at that
``updatedAt`` (or later) is skipped. Keys it cannot read are counted and left untouched.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from adapters.container import Container
from adapters.eventlog import entry_fields
from domain.events import ProgressSaved, SeriesProgressSaved
from domain.progress import RESUME_TTL, epoch_ms, valid_tmdb_id
from projections.resume import index_key

KEY_PREFIX = "resume:"
IMPORT_ACTOR = "import:express"
SCAN_COUNT = 1000
BATCH = 500


class LegacyValue(msgspec.Struct, rename="camel"):
    """The JSON the Express service stored."""

    current_time: float
    updated_at: str | None = None


@dataclass
class ImportReport:
    """What one run found: keys seen, imported, already indexed, lapsed, and unreadable."""

    scanned: int = 0
    imported: int = 0
    already_indexed: int = 0
    lapsed: int = 0
    unreadable: list[str] = field(default_factory=list)


def split_key(key: str) -> tuple[str, str] | None:
    """``(clerkId, tmdbId)`` of a resume key; Clerk ids contain no ``:``, tmdb ids may."""
    if not key.startswith(KEY_PREFIX):
        return None
    clerk_id, sep, tmdb_id = key[len(KEY_PREFIX) :].partition(":")
    if not (sep and clerk_id and valid_tmdb_id(tmdb_id)):
        return None
    return clerk_id, tmdb_id


def read_legacy(key: str, raw: bytes | None, expire_ms: int) -> ProgressSaved | None:
    """The save of the position stored under ``key``, or ``None`` if it is not one the service
    wrote.

    It occurred at the value's ``updatedAt``; a value without one is dated 30 days before its
    expiry (the service set both at once).
    """
    names = split_key(key)
    if names is None or raw is None:
        return None
    try:
        value = msgspec.json.decode(raw, type=LegacyValue)
    except msgspec.DecodeError:
        return None
    if not (math.isfinite(value.current_time) and value.current_time >= 0):
        return None
    updated_at = dated(value.updated_at, expire_ms)
    if updated_at is None:
        return None
    return ProgressSaved(
        occurred_at=updated_at,
        actor=IMPORT_ACTOR,
        clerk_id=names[0],
        tmdb_id=names[1],
        current_time=value.current_time,
    )


def dated(updated_at: str | None, expire_ms: int) -> datetime | None:
    """A stored ``updatedAt``, else 30 days before the key's expiry (both were set at once)."""
    moment = instant(updated_at)
    if moment is None and expire_ms > 0:
        moment = datetime.fromtimestamp(expire_ms / 1000, UTC) - RESUME_TTL
    return moment


def instant(text: str | None) -> datetime | None:
    """A stored ``updatedAt`` as a UTC instant (no zone: UTC), or ``None`` if unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


async def key_batches(container: Container, prefix: str = KEY_PREFIX) -> AsyncIterator[list[str]]:
    """The names of the keys starting with ``prefix``, ``BATCH`` at a time (a ``SCAN``)."""
    batch: list[str] = []
    async for raw in container.redis.scan_iter(match=f"{prefix}*", count=SCAN_COUNT):
        batch.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def read_values(container: Container, keys: Sequence[str]) -> list[tuple[Any, int]]:
    """Each key's value and expiry instant (``PEXPIRETIME``), in one round trip."""
    async with container.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pexpiretime(key)
        results = await pipe.execute()
    return list(zip(results[::2], results[1::2], strict=True))


S = TypeVar("S", ProgressSaved, SeriesProgressSaved)


@dataclass(frozen=True)
class KeyKind(Generic[S]):
    """One kind of key the origin service wrote: the save each key stands for, and where the
    projection indexes it."""

    prefix: str
    read: Callable[[str, Any, int], S | None]  # key, raw value, expiry ms
    index_entry: Callable[[S], tuple[str, str]]  # the projection's index key and member


async def import_keys(
    container: Container, kind: KeyKind[S], dry_run: bool = False
) -> ImportReport:
    """Append the save of every unindexed live key of ``kind``."""
    report = ImportReport()
    lapse_before = container.clock.now() - RESUME_TTL
    async for keys in key_batches(container, kind.prefix):
        report.scanned += len(keys)
        found: list[S] = []
        for key, (raw, expire_ms) in zip(keys, await read_values(container, keys), strict=True):
            saved = kind.read(key, raw, int(expire_ms))
            if saved is None:
                if raw is not None:  # None: it expired between SCAN and GET
                    report.unreadable.append(key)
            elif saved.occurred_at <= lapse_before:
                report.lapsed += 1  # past its 30 days: importing it would delete it
            else:
                found.append(saved)
        new = [
            saved
            for saved, score in zip(found, await _indexed(container, kind, found), strict=True)
            if score is None or abs(score) < epoch_ms(saved.occurred_at)
        ]
        report.already_indexed += len(found) - len(new)
        report.imported += len(new)
        if new and not dry_run:
            async with container.redis.pipeline(transaction=False) as pipe:
                for saved in new:
                    stream = container.events.stream_for(saved.clerk_id)
                    pipe.xadd(stream, entry_fields(saved))  # type: ignore[arg-type]
                await pipe.execute()
    return report


async def _indexed(
    container: Container, kind: KeyKind[S], found: Sequence[S]
) -> list[float | None]:
    async with container.redis.pipeline(transaction=False) as pipe:
        for saved in found:
            pipe.zscore(*kind.index_entry(saved))
        return list(await pipe.execute())


TITLE_KEYS = KeyKind(
    KEY_PREFIX, read_legacy, lambda saved: (index_key(saved.clerk_id), saved.tmdb_id)
)


async def import_express_keys(container: Container, dry_run: bool = False) -> ImportReport:
    """Append ``progress.saved`` for every unindexed live Express resume key."""
    return await import_keys(container, TITLE_KEYS, dry_run)
