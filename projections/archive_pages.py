"""The read side of the event archive: keyset pages in archive order, with analyst filters.

Positions are assigned in commit order under a lock by the archive writer, so the rows a
reader can see are always a prefix of the final order: a later commit never lands below a
position someone has already read. That is why ``position > after ORDER BY position`` pages
are complete (no gaps) even while events are being archived, and why every reader here pages
by position rather than by offset or time. It is also why a full page never changes until rows
already archived are rewritten (``archive_rewritten``), so the feed keeps full pages.

Pages come back opened: a sealed body (``adapters.keyring``) is decrypted with the keys the page
names, looked up in one query on the page's connection; an erased event keeps its place with
``data`` ``None``. The child filter of exports reads the opened bodies, so it is applied here,
after opening, rather than in SQL.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.keyring import Keyring
from adapters.tables import events
from domain.codec import CURRENT_VERSION, UnknownEvent, decode
from domain.history import ArchiveFilter
from projections.archive import actor_of, place_of

EXPORT_PAGE_SIZE = 5_000
# A random token written after every change to rows already archived (an erasure, a retention
# run): a full page, kept by an API process under the token it read first, stands until then.
REWRITTEN_KEY = "medio:read-version:archive"


async def archive_rewritten(redis: Redis) -> None:
    """Archived rows changed in place (after the change committed): kept pages lapse."""
    await redis.set(REWRITTEN_KEY, secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One archive row, opened: ``data`` is the event JSON exactly as appended, ``None`` once
    the event is erased (and ``actor`` then empty)."""

    position: int
    shard: int
    stream_id: str
    type: str
    version: int
    occurred_at: datetime
    actor: str
    data: str | None

    @property
    def erased(self) -> bool:
        return self.data is None

    @property
    def id(self) -> str:
        """A stable id across exports and re-imports: the event's place in the log."""
        return f"{self.shard}-{self.stream_id}"


def _conditions(wanted: ArchiveFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if wanted.types:
        conditions.append(events.c.type.in_(wanted.types))
    if wanted.since is not None:
        conditions.append(events.c.occurred_at >= wanted.since)
    if wanted.until is not None:
        conditions.append(events.c.occurred_at < wanted.until)
    if wanted.key_ids:
        conditions.append(events.c.key_id.in_(wanted.key_ids))
    return conditions


class _Owner(msgspec.Struct):
    profile_id: int | None = None


_owner = msgspec.json.Decoder(_Owner)


def _opened(row: Any, body: bytes | None) -> ArchivedEvent:
    occurred_at: datetime = row.occurred_at
    if occurred_at.tzinfo is None:  # SQLite hands back naive UTC
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return ArchivedEvent(
        position=int(row.position),
        shard=int(row.shard),
        stream_id=row.stream_id,
        type=row.type,
        version=int(row.version),
        occurred_at=occurred_at,
        actor=actor_of(row, body),
        data=body.decode() if body is not None else None,
    )


def _of_profile(event: ArchivedEvent, profile_id: int) -> bool:
    return event.data is not None and _owner.decode(event.data).profile_id == profile_id


async def _read(
    conn: AsyncConnection,
    keyring: Keyring,
    after: int,
    limit: int,
    wanted: ArchiveFilter,
    upto: int | None,
) -> tuple[list[ArchivedEvent], int, int]:
    """Matching events of the next ``limit`` rows, the rows read and the last position."""
    query = (
        sa.select(*events.c)
        .where(events.c.position > after, *_conditions(wanted))
        .order_by(events.c.position)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(events.c.position <= upto)
    rows = (await conn.execute(query)).all()
    bodies = await keyring.open(
        conn, [(r.key_id, place_of(r.shard, r.stream_id), r.data) for r in rows]
    )
    found = [_opened(row, body) for row, body in zip(rows, bodies, strict=True)]
    if wanted.profile_id is not None:
        found = [e for e in found if _of_profile(e, wanted.profile_id)]
    return found, len(rows), int(rows[-1].position) if rows else after


async def read_page(
    conn: AsyncConnection,
    keyring: Keyring,
    after: int,
    limit: int,
    wanted: ArchiveFilter | None = None,
    upto: int | None = None,
) -> list[ArchivedEvent]:
    """The events matching ``wanted`` among the ``limit`` rows after ``after`` (up to ``upto``),
    in archive order."""
    found, _, _ = await _read(conn, keyring, after, limit, wanted or ArchiveFilter(), upto)
    return found


async def archive_head(conn: AsyncConnection) -> tuple[int, int]:
    """``(first, last)`` archived positions, ``(0, 0)`` when the archive is empty."""
    row = (
        await conn.execute(
            sa.select(sa.func.min(events.c.position), sa.func.max(events.c.position))
        )
    ).one()
    return (int(row[0] or 0), int(row[1] or 0))


async def iter_archive(
    engine: AsyncEngine,
    keyring: Keyring,
    wanted: ArchiveFilter,
    upto: int,
    page_size: int = EXPORT_PAGE_SIZE,
) -> AsyncIterator[list[ArchivedEvent]]:
    """Every matching event up to position ``upto``, one page at a time (constant memory).

    Each page is its own short query, so a long export never holds a transaction (or a
    server-side cursor) open against the archive writer.
    """
    after = 0
    while after < upto:
        async with engine.connect() as conn:
            page, read, after = await _read(conn, keyring, after, page_size, wanted, upto)
        if page:
            yield page
        if read < page_size:
            return


def current_body(event: ArchivedEvent) -> tuple[int, bytes]:
    """The event body upcast to its type's current version, as ``(version, json)``.

    Stored JSON at the current version is returned untouched; older versions go through the
    codec's upcasters. A type or version this code cannot read is returned as stored, so an
    analyst still sees it rather than an error. An erased event's body is JSON ``null``.
    """
    if event.data is None:
        return event.version, b"null"
    stored = event.data.encode()
    if CURRENT_VERSION.get(event.type) == event.version:
        return event.version, stored
    try:
        upcast = decode(event.type, event.version, stored)
    except UnknownEvent:
        return event.version, stored
    return CURRENT_VERSION[event.type], msgspec.json.encode(upcast)
