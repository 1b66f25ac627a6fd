"""How far each projection trails the log, per shard: for ``/ready`` and operators.

``behind`` counts the stream entries after the projection's checkpoint (exact up to
``LAG_COUNT_CAP``, then ``capped``); ``oldest_ms`` is the age of the first of them, taken from
its entry id (the Redis server's clock when it was appended), so it needs no clock of ours.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.eventlog import stream_name
from projections.base import stream_id_key
from projections.checkpoints import ZERO, read_redis_checkpoints, read_sql_checkpoints
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.streams import behind

LAG_COUNT_CAP = 10_000
# /ready is public and polled: it counts at most this many entries per checkpoint (then
# ``capped``), so one measurement costs a few small XRANGEs per shard, whatever the backlog.
READY_COUNT_CAP = 100


class ShardLag(msgspec.Struct):
    """One projection's lag in one shard."""

    checkpoint: str
    behind: int
    capped: bool
    oldest_ms: int


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def projection_lag(
    redis: Redis, engine: AsyncEngine, shards: int, cap: int = LAG_COUNT_CAP
) -> dict[str, dict[str, ShardLag]]:
    """``{projection: {shard: lag}}`` for every registered projection (``cap``: see above)."""
    async with engine.connect() as conn:
        sql_checkpoints = await read_sql_checkpoints(conn)
    now_ms = await _server_ms(redis)
    result: dict[str, dict[str, ShardLag]] = {}
    for shard in range(shards):
        positions = {
            cls.name: sql_checkpoints.get((cls.name, shard), ZERO) for cls in SQL_PROJECTIONS
        }
        positions.update(
            await read_redis_checkpoints(redis, [cls.name for cls in REDIS_PROJECTIONS], shard)
        )
        measured: dict[str, ShardLag] = {}
        for name, checkpoint in positions.items():
            if checkpoint not in measured:
                count, first = await behind(redis, stream_name(shard), checkpoint, cap)
                age = now_ms - stream_id_key(first)[0] if first else 0
                measured[checkpoint] = ShardLag(checkpoint, count, count >= cap, max(age, 0))
            result.setdefault(name, {})[str(shard)] = measured[checkpoint]
    return result


def as_json(lag: dict[str, dict[str, ShardLag]]) -> dict[str, Any]:
    """Plain dicts, for the readiness document."""
    return {name: msgspec.to_builtins(shards) for name, shards in lag.items()}
