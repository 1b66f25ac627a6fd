"""CPU seconds spent by this process, its Redis and its Postgres backends during a benchmark.

On a shared machine wall-clock throughput says as much about the neighbours as about the code;
CPU time per event does not. A projector is a sequential loop (read, commit, ack), so with the
three parties on idle cores its wall time is close to the sum of their CPU times, which gives
an uncontended estimate next to the measured figure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    client: float
    redis: float
    postgres: dict[int, float]  # backend pid -> CPU seconds


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds per party between two samples."""

    client: float
    redis: float
    postgres: float

    @property
    def total(self) -> float:
        return self.client + self.redis + self.postgres

    def per_event_us(self, events: int) -> dict[str, float]:
        parts = {"client": self.client, "redis": self.redis, "postgres": self.postgres}
        return {name: round(seconds / events * 1e6, 1) for name, seconds in parts.items()}


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def sample(redis: Redis, database_url: str) -> CpuSample:
    """CPU used so far by this process, the Redis server and the database's backends."""
    info = await redis.info("cpu")
    redis_cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    conn = await asyncpg.connect(database_url)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    backends = {row["pid"]: _process_cpu(row["pid"]) for row in pids}
    return CpuSample(time.process_time(), redis_cpu, backends)


def used(before: CpuSample, after: CpuSample) -> CpuUse:
    postgres = sum(cpu - before.postgres.get(pid, 0.0) for pid, cpu in after.postgres.items())
    return CpuUse(after.client - before.client, after.redis - before.redis, postgres)
