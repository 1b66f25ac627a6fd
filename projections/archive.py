"""The archive: every event, forever, in the ``events`` table analysts read and replay from.

The body of an event that carries a family's or a child's personal data is stored sealed with
that subject's key (``adapters.keyring``, ``domain.privacy``), together with the key's id, and
its ``actor`` column left empty (the actor is in the sealed body); an event without personal
data is stored as appended. A batch's keys are found (or made) in one query before the
position lock is taken.

Positions are handed out in commit order: on Postgres a transaction-scoped advisory lock is
held from reading ``max(position)`` to commit, so a transaction that commits later always has
higher positions and a reader following ``position > last_seen`` never skips a row that
commits late. SQLite serialises writers, which gives the same order for free.

On a partitioned archive (Postgres) the writer makes sure a partition holds every position it
is about to write (``adapters.archive_partitions.ensure_room``: free unless the partition job
has fallen behind), so an append never fails for a missing partition.

The rows themselves go through an ``ArchiveWriter``: asyncpg's binary ``COPY`` on Postgres (the
fastest bulk insert there is), a SQLAlchemy ``INSERT`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.archive_partitions import ensure_room
from adapters.keyring import Keyring, Sealed, keyring_for
from adapters.settings import get_settings
from adapters.tables import events
from domain.privacy import subject_of
from projections.base import Backend, Envelope, RowWriters, SqlProjection
from projections.bulk_sql import raw_connection

# The shard of rows that were never in the log: what a retention run carried over
# (``services.retention``). Their stream id is ``0-<position>``.
ARCHIVE_ONLY_SHARD = -1

# pg_advisory_xact_lock key of "archive positions" (any constant shared by every writer).
POSITION_LOCK_KEY = 0x6D6564696F  # "medio"


COLUMNS = (
    "position",
    "shard",
    "stream_id",
    "type",
    "version",
    "occurred_at",
    "actor",
    "data",
    "key_id",
)


def place_of(shard: int, stream_id: str) -> str:
    """An event's place in the log, ``<shard>-<stream id>``: bound to its sealed body."""
    return f"{shard}-{stream_id}"


def archive_row(position: int, envelope: Envelope, sealed: Sealed) -> tuple[Any, ...]:
    """The stored form of one event (``COLUMNS``): raw type, version and JSON body as appended
    (sealed when it is personal), plus where it came from."""
    event = envelope.event
    key_id, data = sealed
    return (
        position,
        envelope.shard,
        envelope.stream_id,
        envelope.type,
        envelope.version,
        event.occurred_at,
        "" if key_id is not None else event.actor,
        data,
        key_id,
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


async def seal_batch(
    conn: AsyncConnection, keyring: Keyring, batch: Sequence[Envelope]
) -> list[Sealed]:
    """What the archive stores of each event's body, in ``batch`` order."""
    bodies = [(subject_of(e.event), place_of(e.shard, e.stream_id), e.data) for e in batch]
    return await keyring.seal(conn, bodies)


class Archive(SqlProjection):
    """Stores every event exactly as appended; the permanent event store."""

    name = "archive"
    handles = frozenset()
    live_tables = (events,)
    # Applied after the other SQL projections of a batch: the position lock is then held
    # only from here to commit, so other shards' transactions wait as little as possible.
    apply_last: ClassVar[bool] = True

    def __init__(
        self,
        scratch: bool = False,
        backend: Backend | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        super().__init__(scratch, backend)
        self._keyring = keyring

    @property
    def keyring(self) -> Keyring:
        """The keyring given, else the process's (from its settings, on first use)."""
        if self._keyring is None:
            self._keyring = keyring_for(get_settings())
        return self._keyring

    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        table = self.tables[events.name]
        sealed = await seal_batch(conn, self.keyring, batch)
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(POSITION_LOCK_KEY)))
        last = (await conn.execute(sa.select(sa.func.max(table.c.position)))).scalar()
        first = (last or 0) + 1
        if not self.scratch:
            settings = get_settings()
            size, ahead = settings.archive_partition_size, settings.archive_partitions_ahead
            await ensure_room(conn, first + len(batch) - 1, size, ahead)
        rows = [
            archive_row(first + i, envelope, kept)
            for i, (envelope, kept) in enumerate(zip(batch, sealed, strict=True))
        ]
        await WRITERS.pick(conn, self.backend).append(conn, table, rows)

    async def dump(self, conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
        """Every event as readers see it, in position order (``COLUMNS`` but the key): sealed
        bodies opened and their actor read back from them (ciphertext differs from copy to
        copy; what it says does not); an erased one has data ``None`` and actor ``""``."""
        table = self.tables[events.name]
        rows = (await conn.execute(sa.select(table).order_by(table.c.position))).all()
        bodies = await self.keyring.open(
            conn, [(r.key_id, place_of(r.shard, r.stream_id), r.data) for r in rows]
        )
        return {
            events.name: [
                (*row[:6], actor_of(row, body), None if body is None else body.decode())
                for row, body in zip(rows, bodies, strict=True)
            ]
        }


class _Actor(msgspec.Struct):
    actor: str = ""


_actor_of = msgspec.json.Decoder(_Actor)


def actor_of(row: Any, body: bytes | None) -> str:
    """The actor column, or for a sealed row the actor inside its body."""
    if row.key_id is None:
        return str(row.actor)
    return _actor_of.decode(body).actor if body is not None else ""
