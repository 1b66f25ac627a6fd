"""The event archive's partitions: the one place that knows whether ``events`` is partitioned.

On Postgres (from migration 0011) ``events`` is range-partitioned by ``position``: partition
``events_p<lower>`` holds positions ``lower <= position < upper``. Position is the archive's
order, so partitions hold consecutive runs of the log: a reader paging ``position > after
ORDER BY position`` (feed, export, replay) reads them one after the other, pruning the ones
below ``after``, and a partition whose rows are all past the retention horizon can be dropped
whole (``services.retention``). Positions never change, so a row never moves between
partitions (retention and erasure rewrite rows in place).

There is no DEFAULT partition (it would make the planner merge every partition instead of
reading them in order); instead partitions are made ahead of need, by the
``archive-partitions`` periodic job (``MEDIO_ARCHIVE_PARTITIONS_AHEAD`` empty ones past the
newest row) and, should the job not have run, by the archive writer itself before it writes
past the last one (``ensure_room``), so an append never fails for a missing partition.

A new partition is created alone, given its unique index on ``(shard, stream_id)`` (a
partitioned table's unique constraints must include the partition key, so that uniqueness
is kept per partition) and attached, which locks the parent only in ``SHARE UPDATE
EXCLUSIVE`` mode: reads and appends go on. Each partition's size is
``MEDIO_ARCHIVE_PARTITION_SIZE`` positions when it is made; changing the setting changes the
partitions made from then on, never existing ones.

SQLite (``medio dev``'s default) has no partitioning: there ``events`` stays one plain table,
every function here is a no-op or an empty answer, and ``is_partitioned`` is false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

PARENT = "events"
# pg_advisory_xact_lock key of "archive partition DDL": the job, the writer and retention
# never create or drop partitions at the same time. Taken after the position lock, if both.
PARTITION_LOCK_KEY = 0x6D6564696F70  # "mediop"
# How long dropping a partition waits for readers before giving up until the next run.
DROP_LOCK_TIMEOUT = "5s"

_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: positions ``lower <= position < upper``."""

    name: str
    lower: int
    upper: int


def partition_name(lower: int) -> str:
    return f"{PARENT}_p{lower}"


async def is_partitioned(conn: AsyncConnection) -> bool:
    """Whether ``events`` is a partitioned table (Postgres after migration 0011)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = await conn.scalar(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:name)"),
        {"name": PARENT},
    )
    return bool(kind == "p")


async def partitions(conn: AsyncConnection) -> list[Partition]:
    """The partitions of ``events`` in position order (none when it is a plain table)."""
    if not await is_partitioned(conn):
        return []
    rows = (
        await conn.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:name)"
            ),
            {"name": PARENT},
        )
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUNDS.search(bound)
        if match is None:  # not one of ours (a DEFAULT partition an operator added)
            continue
        found.append(Partition(name, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda p: p.lower)


async def _lock(conn: AsyncConnection) -> None:
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PARTITION_LOCK_KEY)))


async def create_partition(conn: AsyncConnection, lower: int, upper: int) -> Partition:
    """Make and attach the partition of positions ``[lower, upper)`` (caller holds the lock)."""
    name = partition_name(lower)
    await conn.execute(
        sa.text(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    )
    await conn.execute(
        sa.text(f'CREATE UNIQUE INDEX "uq_{name}_shard_stream_id" ON "{name}" (shard, stream_id)')
    )
    await conn.execute(
        sa.text(
            f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ({int(lower)}) TO ({int(upper)})"
        )
    )
    return Partition(name, lower, upper)


async def newest_position(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.text(f"SELECT coalesce(max(position), 0) FROM {PARENT}")))


async def ensure_partitions(
    conn: AsyncConnection, size: int, ahead: int, head: int | None = None
) -> list[Partition]:
    """Make partitions until ``ahead`` of them lie wholly past position ``head`` (default: the
    newest row's); the ones made. Each is ``size`` positions, following the last one."""
    if not await is_partitioned(conn):
        return []
    await _lock(conn)
    existing = await partitions(conn)
    if head is None:
        head = await newest_position(conn)
    top = existing[-1].upper if existing else 0
    waiting = sum(1 for p in existing if p.lower > head)
    made = []
    while waiting < ahead or top <= head:
        made.append(await create_partition(conn, top, top + size))
        if top > head:
            waiting += 1
        top += size
    return made


# Per database: every position below this has a partition (positions are never un-made but
# by retention, which drops only old partitions). ``inf`` when ``events`` is a plain table.
_covered: dict[str, float] = {}


async def ensure_room(conn: AsyncConnection, last: int, size: int, ahead: int) -> None:
    """Before the archive writes positions up to ``last``: make sure a partition holds each.

    Costs nothing while the process knows a partition exists past ``last``; looks at the
    catalog when it does not, and makes partitions (in the caller's transaction) only if
    the ``archive-partitions`` job has fallen behind."""
    key = conn.engine.url.render_as_string(hide_password=True)
    if last < _covered.get(key, 0):
        return
    if not await is_partitioned(conn):
        _covered[key] = float("inf")
        return
    existing = await partitions(conn)
    if not existing or existing[-1].upper <= last:
        await ensure_partitions(conn, size, ahead, head=last)
        existing = await partitions(conn)
    _covered[key] = existing[-1].upper


def forget_room() -> None:
    """Forget what ``ensure_room`` learnt (after a migration changed the table)."""
    _covered.clear()


async def drop_partition(conn: AsyncConnection, partition: Partition) -> None:
    """Drop ``partition`` and its rows; waits at most ``DROP_LOCK_TIMEOUT`` for readers (the
    caller's transaction then fails with a lock timeout, and a later run tries again)."""
    await _lock(conn)
    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
    await conn.execute(sa.text(f'ALTER TABLE {PARENT} DETACH PARTITION "{partition.name}"'))
    await conn.execute(sa.text(f'DROP TABLE "{partition.name}"'))
