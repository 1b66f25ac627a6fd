"""partitioned event archive: ``events`` range-partitioned by position (Postgres only)

Converts an existing archive in place, in the migration's transaction: the plain table (and
its constraint and index names) is renamed aside, the partitioned ``events`` is created with
the same columns, primary key (``position``, the partition key) and indexes, partitions are
made to cover every archived position plus ``MEDIO_ARCHIVE_PARTITIONS_AHEAD`` empty ones of
``MEDIO_ARCHIVE_PARTITION_SIZE`` positions, the rows are copied over and the old table is
dropped. The unique ``(shard, stream_id)`` constraint becomes a unique index per partition
(Postgres requires a partitioned table's unique constraints to include the partition key).
Positions are not generated (no sequence): the archive writer hands them out, so they carry
over unchanged.

Downgrade copies the rows back into one plain table with the constraints of 0002/0008.
SQLite has no partitioning: nothing changes there, either way.

The DDL here is written out rather than taken from ``adapters.archive_partitions`` so that
this revision keeps doing what it did when the code changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DEFAULT_SIZE = 10_000_000
DEFAULT_AHEAD = 2
COLUMNS = "position, shard, stream_id, type, version, occurred_at, actor, data, key_id"
COLUMN_DDL = """
    position bigint NOT NULL,
    shard smallint NOT NULL,
    stream_id varchar(32) NOT NULL,
    type varchar(64) NOT NULL,
    version smallint NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    actor varchar(255) NOT NULL,
    data text NOT NULL,
    key_id bigint
"""


def _sizes() -> tuple[int, int]:
    settings: Any = op.get_context().config.attributes.get("settings")
    size = getattr(settings, "archive_partition_size", DEFAULT_SIZE)
    ahead = getattr(settings, "archive_partitions_ahead", DEFAULT_AHEAD)
    return int(size), int(ahead)


def _rename_aside(table: str, aside: str, indexes: list[str]) -> None:
    op.execute(f"ALTER TABLE {table} RENAME TO {aside}")
    for index in indexes:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}__{aside}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    size, ahead = _sizes()
    old = "events_unpartitioned"
    _rename_aside(
        "events",
        old,
        [
            "events_pkey",
            "uq_events_shard_stream_id",
            "ix_events_type_position",
            "ix_events_occurred_at",
        ],
    )
    op.execute(
        f"CREATE TABLE events ({COLUMN_DDL}, CONSTRAINT events_pkey PRIMARY KEY (position))"
        " PARTITION BY RANGE (position)"
    )
    op.execute("CREATE INDEX ix_events_type_position ON events (type, position)")
    op.execute("CREATE INDEX ix_events_occurred_at ON events (occurred_at)")
    head = op.get_bind().scalar(sa.text(f"SELECT coalesce(max(position), 0) FROM {old}"))
    lower, waiting = 0, 0
    while waiting < ahead:
        name = f"events_p{lower}"
        op.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        op.execute(f"CREATE UNIQUE INDEX uq_{name}_shard_stream_id ON {name} (shard, stream_id)")
        op.execute(
            f"ALTER TABLE events ATTACH PARTITION {name}"
            f" FOR VALUES FROM ({lower}) TO ({lower + size})"
        )
        if lower > head:
            waiting += 1
        lower += size
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute("ANALYZE events")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    parted = "events_partitioned"
    _rename_aside(
        "events", parted, ["events_pkey", "ix_events_type_position", "ix_events_occurred_at"]
    )
    op.execute(
        f"CREATE TABLE events ({COLUMN_DDL}, CONSTRAINT events_pkey PRIMARY KEY (position),"
        " CONSTRAINT uq_events_shard_stream_id UNIQUE (shard, stream_id))"
    )
    op.execute("CREATE INDEX ix_events_type_position ON events (type, position)")
    op.execute("CREATE INDEX ix_events_occurred_at ON events (occurred_at)")
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM {parted} ORDER BY position")
    op.execute(f"DROP TABLE {parted}")  # and its partitions
