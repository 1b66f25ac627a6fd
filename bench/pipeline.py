"""Redis commands from an API process, measured alone: ``python -m bench.pipeline [--runs N]``.

The API's CPU per Redis command: 32 callers each sending an ``INCR``, a four-key ``MGET`` and
a 400-byte ``SET`` in turn (a heartbeat's three round trips), three ways: through
``AutoPipeline`` (each batch one write on one multiplexed connection,
``adapters.redis_connection``); the same batches each on a connection taken from redis-py's
pool, as ``AutoPipeline`` sent them before (``PooledBatches``); and each command on its own
through redis-py's client. CPU of this process per command, on uvloop.

Runs alternate between the ways; medians are printed. On a private ``redis-server``; takes about
half a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline, exchange
from bench.services import redis_server, stop_cleanly_on_sigterm

CALLERS = 32
ROUNDS = 600  # per caller and run: 57,600 commands

Execute = Callable[..., Awaitable[Any]]


async def _caller(execute: Execute, n: int, index: int) -> None:
    for _ in range(n):
        await execute("INCR", f"bench:count:{index}")
        await execute("MGET", "bench:a", "bench:b", "bench:c", "bench:d")
        await execute("SET", f"bench:state:{index}", "s" * 400, "EX", 100)


class PooledBatches(AutoPipeline):
    """``AutoPipeline``'s batches as it sent them on one Redis before: a task per batch, which
    takes a connection from redis-py's pool, writes the batch, reads each reply and puts the
    connection back, under a deadline."""

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._round_trip(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _round_trip(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        pool = self.redis.connection_pool
        async with asyncio.timeout(self.timeout):
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                replies = await connection.retry.call_with_retry(
                    lambda: exchange(connection, [args for args, _ in batch]),
                    lambda _error: connection.disconnect(),
                )
            finally:
                await pool.release(connection)
        for (_, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


WAYS = ("autopipeline", "pooled batches", "redis-py")


async def _cpu_per_command(url: str, way: str) -> float:
    """µs of this process's CPU per command, sent one of the ``WAYS``."""
    client = Redis.from_url(url)
    pipeline = (PooledBatches if way == "pooled batches" else AutoPipeline)(
        Redis.from_url(url), timeout=10
    )
    execute: Execute = client.execute_command if way == "redis-py" else pipeline.execute
    await asyncio.gather(*(_caller(execute, 20, i) for i in range(CALLERS)))  # connected, warm
    started = time.process_time()
    await asyncio.gather(*(_caller(execute, ROUNDS, i) for i in range(CALLERS)))
    used = time.process_time() - started
    await pipeline.close()
    await client.aclose()
    return used / (CALLERS * ROUNDS * 3) * 1e6


def run(runs: int = 3) -> dict[str, Any]:
    figures: dict[str, list[float]] = {
        **{way: [] for way in WAYS},
    }
    with redis_server() as url:
        for _ in range(runs):
            for way in WAYS:
                figures[way].append(uvloop.run(_cpu_per_command(url, way)))
    medians = {name: round(statistics.median(values), 2) for name, values in figures.items()}
    return {"medians": medians, "runs": figures}


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each way, alternated")
    result = run(parser.parse_args(argv).runs)
    m = result["medians"]
    print(
        f"API CPU per command: AutoPipeline {m['autopipeline']} µs, pooled batches "
        f"{m['pooled batches']} µs, one command at a time {m['redis-py']} µs"
    )
    return result


if __name__ == "__main__":
    stop_cleanly_on_sigterm()
    main(sys.argv[1:])
