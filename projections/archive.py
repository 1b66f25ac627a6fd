"""The archive: every event, forever, in the ``events`` table analysts read and replay from.

Positions are handed out in commit order: on Postgres a transaction-scoped advisory lock is
held from reading ``max(position)`` to commit, so a transaction that commits later always has
higher positions and a reader following ``position > last_seen`` never skips a row that
commits late. SQLite serialises writers, which gives the same order for free.

The rows themselves go through an ``ArchiveWriter``: asyncpg's binary ``COPY`` on Postgres (the
fastest bulk insert there is), a SQLAlchemy ``INSERT`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.tables import events
from projections.base import Envelope, RowWriters, SqlProjection
from projections.bulk_sql import raw_connection

# pg_advisory_xact_lock key of "archive positions" (any constant shared by every writer).
POSITION_LOCK_KEY = 0x6D6564696F  # "medio"


COLUMNS = ("position", "shard", "stream_id", "type", "version", "occurred_at", "actor", "data")


def archive_row(position: int, envelope: Envelope) -> tuple[Any, ...]:
    """The stored form of one event (``COLUMNS``): raw type, version and JSON body as appended,
    plus where it came from."""
    event = envelope.event
    return (
        position,
        envelope.shard,
        envelope.stream_id,
        envelope.type,
        envelope.version,
        event.occurred_at,
        event.actor,
        envelope.data.decode(),
    )


class ArchiveWriter(Protocol):
    """Appends archive rows (``COLUMNS``, positions already given) in the caller's transaction."""

    async def append(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[tuple[Any, ...]]
    ) -> None: ...


class CopyArchiveWriter:
    """``ArchiveWriter`` on asyncpg: one binary ``COPY`` of the batch."""

    async def append(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        raw = await raw_connection(conn)
        await raw.copy_records_to_table(table.name, records=rows, columns=COLUMNS)


class InsertArchiveWriter:
    """``ArchiveWriter`` on any database: one SQLAlchemy ``INSERT`` of the batch."""

    async def append(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        await conn.execute(table.insert(), [dict(zip(COLUMNS, row, strict=True)) for row in rows])


WRITERS = RowWriters[ArchiveWriter](asyncpg=CopyArchiveWriter(), sqlalchemy=InsertArchiveWriter())


class Archive(SqlProjection):
    """Stores every event exactly as appended; the permanent event store."""

    name = "archive"
    handles = frozenset()
    live_tables = (events,)
    # Applied after the other SQL projections of a batch: the position lock is then held
    # only from here to commit, so other shards' transactions wait as little as possible.
    apply_last: ClassVar[bool] = True

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        table = self.tables[events.name]
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(POSITION_LOCK_KEY)))
        last = (await conn.execute(sa.select(sa.func.max(table.c.position)))).scalar()
        first = (last or 0) + 1
        rows = [archive_row(first + i, envelope) for i, envelope in enumerate(batch)]
        await WRITERS.pick(conn, self.backend).append(conn, table, rows)
