"""The read side of the event archive: keyset pages in archive order, with analyst filters.

Positions are assigned in commit order under a lock by the archive writer, so the rows a
reader can see are always a prefix of the final order: a later commit never lands below a
position someone has already read. That is why ``position > after ORDER BY position`` pages
are complete (no gaps) even while events are being archived, and why every reader here pages
by position rather than by offset or time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.tables import events
from domain.codec import CURRENT_VERSION, UnknownEvent, decode
from domain.history import ArchiveFilter

EXPORT_PAGE_SIZE = 5_000


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One archive row as stored: ``data`` is the event JSON exactly as appended."""

    position: int
    shard: int
    stream_id: str
    type: str
    version: int
    occurred_at: datetime
    actor: str
    data: str

    @property
    def id(self) -> str:
        """A stable id across exports and re-imports: the event's place in the log."""
        return f"{self.shard}-{self.stream_id}"


def _profile_clause(dialect: str, profile_id: int) -> sa.ColumnElement[bool]:
    # Postgres must parse the TEXT column as JSON; SQLite's json functions read text directly.
    body: Any = (
        sa.type_coerce(events.c.data, sa.JSON)
        if dialect == "sqlite"
        else sa.cast(events.c.data, sa.JSON)
    )
    return body["profile_id"].as_integer() == profile_id  # type: ignore[no-any-return]


def _conditions(dialect: str, wanted: ArchiveFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if wanted.types:
        conditions.append(events.c.type.in_(wanted.types))
    if wanted.since is not None:
        conditions.append(events.c.occurred_at >= wanted.since)
    if wanted.until is not None:
        conditions.append(events.c.occurred_at < wanted.until)
    if wanted.profile_id is not None:
        conditions.append(_profile_clause(dialect, wanted.profile_id))
    return conditions


def _row(row: Sequence[Any]) -> ArchivedEvent:
    occurred_at: datetime = row[5]
    if occurred_at.tzinfo is None:  # SQLite hands back naive UTC
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return ArchivedEvent(
        position=int(row[0]),
        shard=int(row[1]),
        stream_id=row[2],
        type=row[3],
        version=int(row[4]),
        occurred_at=occurred_at,
        actor=row[6],
        data=row[7],
    )


async def read_page(
    conn: AsyncConnection,
    after: int,
    limit: int,
    wanted: ArchiveFilter | None = None,
    upto: int | None = None,
) -> list[ArchivedEvent]:
    """Up to ``limit`` matching events with ``after < position (<= upto)``, in archive order."""
    conditions = _conditions(conn.dialect.name, wanted or ArchiveFilter())
    query = (
        sa.select(*events.c)
        .where(events.c.position > after, *conditions)
        .order_by(events.c.position)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(events.c.position <= upto)
    result = await conn.execute(query)
    return [_row(row) for row in result]


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
            page = await read_page(conn, after, page_size, wanted, upto=upto)
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        after = page[-1].position


def current_body(event: ArchivedEvent) -> tuple[int, bytes]:
    """The event body upcast to its type's current version, as ``(version, json)``.

    Stored JSON at the current version is returned untouched; older versions go through the
    codec's upcasters. A type or version this code cannot read is returned as stored, so an
    analyst still sees it rather than an error.
    """
    stored = event.data.encode()
    if CURRENT_VERSION.get(event.type) == event.version:
        return event.version, stored
    try:
        upcast = decode(event.type, event.version, stored)
    except UnknownEvent:
        return event.version, stored
    return CURRENT_VERSION[event.type], msgspec.json.encode(upcast)
