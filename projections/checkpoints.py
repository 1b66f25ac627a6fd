"""Where each projection keeps the last stream entry it applied, per shard.

SQL projections keep it in ``projection_checkpoints``, written in the transaction that writes
their rows; Redis projections keep it in a key written by the script that applies their
batch. Either way the position and the effects commit together, so a redelivered entry at or
below the checkpoint is recognised and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.tables import projection_checkpoints
from projections.base import stream_id_key
from projections.redis_commands import text

ZERO = "0-0"
REDIS_CHECKPOINT_PREFIX = "medio:checkpoint:"


def newer(stream_id: str, checkpoint: str) -> bool:
    """Whether ``stream_id`` lies after ``checkpoint`` in stream order."""
    return stream_id_key(stream_id) > stream_id_key(checkpoint)


def redis_checkpoint_key(projection: str, shard: int) -> str:
    """The key holding a Redis projection's position in one shard."""
    return f"{REDIS_CHECKPOINT_PREFIX}{projection}:{{{shard}}}"


def _insert(conn: AsyncConnection) -> postgresql.Insert | sqlite.Insert:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(projection_checkpoints)
    if dialect == "sqlite":
        return sqlite.insert(projection_checkpoints)
    raise NotImplementedError(f"checkpoints on {dialect}")


async def lock_sql_checkpoints(
    conn: AsyncConnection, names: Iterable[str], shard: int
) -> dict[str, str]:
    """Read (creating at ``0-0`` when missing) and lock the checkpoints of ``names`` in ``shard``.

    The row lock (``FOR UPDATE``) makes a second projector of the same shard wait and then see
    the position this transaction commits, so it cannot apply the same entries again.
    """
    wanted = list(names)
    if not wanted:
        return {}
    table = projection_checkpoints
    query = sa.select(table.c.projection, table.c.position).where(
        table.c.shard == shard, table.c.projection.in_(wanted)
    )
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        query = query.order_by(table.c.projection).with_for_update()
        found = {name: pos for name, pos in (await conn.execute(query)).all()}
        if len(found) == len(set(wanted)):
            return found
    # SQLite: writing first takes the database write lock before anything is read.
    now = datetime.now(UTC)
    await conn.execute(
        _insert(conn).on_conflict_do_nothing(),
        [{"projection": n, "shard": shard, "position": ZERO, "updated_at": now} for n in wanted],
    )
    return {name: pos for name, pos in (await conn.execute(query)).all()}


async def write_sql_checkpoints(
    conn: AsyncConnection, names: Iterable[str], position: str, shard: int
) -> None:
    """Move the checkpoints of ``names`` (already locked by this transaction) to ``position``."""
    moved = list(names)
    if not moved:
        return
    table = projection_checkpoints
    await conn.execute(
        table.update()
        .where(table.c.shard == shard, table.c.projection.in_(moved))
        .values(position=position, updated_at=datetime.now(UTC))
    )


async def set_sql_checkpoints(
    conn: AsyncConnection, positions: Mapping[str, str], shard: int
) -> None:
    """Create or overwrite checkpoints (replay sets them after a swap)."""
    await lock_sql_checkpoints(conn, positions, shard)
    for name, position in positions.items():
        await write_sql_checkpoints(conn, [name], position, shard)


async def read_sql_checkpoints(conn: AsyncConnection) -> dict[tuple[str, int], str]:
    """Every SQL checkpoint, by ``(projection, shard)``."""
    table = projection_checkpoints
    rows = await conn.execute(sa.select(table.c.projection, table.c.shard, table.c.position))
    return {(name, shard): position for name, shard, position in rows.all()}


async def read_redis_checkpoints(redis: Redis, names: Iterable[str], shard: int) -> dict[str, str]:
    """The positions of Redis projections ``names`` in ``shard`` (``0-0`` when never set)."""
    wanted = list(names)
    if not wanted:
        return {}
    values = await redis.mget([redis_checkpoint_key(n, shard) for n in wanted])
    return {n: text(v) if v else ZERO for n, v in zip(wanted, values, strict=True)}


async def lowest_checkpoint(
    redis: Redis,
    engine: AsyncEngine,
    shard: int,
    sql_names: Iterable[str],
    redis_names: Iterable[str],
) -> str:
    """The position every one of the named projections has passed in ``shard``."""
    wanted = set(sql_names)
    table = projection_checkpoints
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(table.c.projection, table.c.position).where(
                table.c.shard == shard, table.c.projection.in_(wanted)
            )
        )
        positions = {name: position for name, position in rows.all()}
    found = [positions.get(name, ZERO) for name in wanted]
    found += (await read_redis_checkpoints(redis, redis_names, shard)).values()
    return min(found, key=stream_id_key, default=ZERO)
