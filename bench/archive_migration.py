"""How long migration 0010 takes to partition an existing archive, and back.

``python -m bench.archive_migration [ROWS] [PARTITION_SIZE]`` (defaults 1,000,000 and
100,000): a throwaway database at revision 0009 gets ``ROWS`` archive rows (200-byte bodies),
then ``medio migrate`` to 0010 and ``alembic downgrade 0009`` are timed, and the rows are
checked to be the same (count, position sum, digest of ids and bodies in position order).
Not part of ``make bench``: it measures an operator's one-off step, not a ratio.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import asyncpg
import msgspec
from alembic import command

from adapters.settings import load_settings
from medio.migrate import alembic_config, upgrade
from tests import scratch

FILL = (
    "INSERT INTO events SELECT g, 0, '1-' || g, 'progress.saved', 1,"
    " now() - interval '1 second' * ($1 - g), '', repeat('x', 200), 1"
    " FROM generate_series(1, $1) g"
)
DIGEST = (
    "SELECT count(*), sum(position),"
    " md5(string_agg(stream_id || data, ',' ORDER BY position)) FROM events"
)


async def _fetch(url: str, sql: str, *args: object) -> tuple[Any, ...]:
    conn = await asyncpg.connect(url)
    try:
        return tuple(await conn.fetchrow(sql, *args) or ())
    finally:
        await conn.close()


def main(rows: int, size: int) -> str:
    name = scratch.new_name("bench_migration")
    url = asyncio.run(scratch.create_database(name))
    base = load_settings(env_file=None)
    settings = msgspec.structs.replace(base, database_url=url, archive_partition_size=size)
    try:
        upgrade(settings, "0009")
        asyncio.run(_fetch(url, FILL, rows))
        asyncio.run(_fetch(url, "ANALYZE events"))
        before = asyncio.run(_fetch(url, DIGEST))
        started = time.perf_counter()
        upgrade(settings)
        up = time.perf_counter() - started
        after = asyncio.run(_fetch(url, DIGEST))
        count = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        parts = asyncio.run(_fetch(url, count))
        started = time.perf_counter()
        command.downgrade(alembic_config(settings), "0009")
        down = time.perf_counter() - started
        same = before == after == asyncio.run(_fetch(url, DIGEST))
        return (
            f"rows={rows} partition_size={size} upgrade={up:.1f}s downgrade={down:.1f}s "
            f"partitions={parts[0]} same_rows={same}"
        )
    finally:
        asyncio.run(scratch.drop_database(name))


if __name__ == "__main__":
    given = [int(a) for a in sys.argv[1:3]]
    print(main(*(given + [1_000_000, 100_000][len(given) :])))
