"""What a running Medio does under load: lag to visibility, archive growth, CPU per party."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]
import redis
from redis.asyncio import Redis

from bench import cpu
from bench.openloop import percentile

POLL_SECONDS = 0.002
GIVE_UP_SECONDS = 30.0


class LagProbe:
    """Resume keys awaited since their save was acknowledged; one ``MGET`` of them per poll.

    The time a key is seen is taken after the ``MGET`` reply, so a lag is overstated by at
    most one poll interval plus one round trip.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: dict[str, float] = {}  # resume key -> loop time of its acknowledgement
        self.lags: list[float] = []
        self.seen: list[tuple[float, float]] = []  # (acknowledged at, lag)
        self.lost = 0
        self.polls = 0

    def acknowledged(self, key: str, at: float) -> None:
        self.pending[key] = at

    async def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not (stop.is_set() and not self.pending):
            if self.pending:
                keys = list(self.pending)
                values = await self.redis.mget(keys)
                now = loop.time()
                self.polls += 1
                for key, value in zip(keys, values, strict=True):
                    if value is not None:
                        acknowledged = self.pending.pop(key)
                        self.lags.append(now - acknowledged)
                        self.seen.append((acknowledged, now - acknowledged))
                    elif now - self.pending[key] > GIVE_UP_SECONDS:
                        del self.pending[key]
                        self.lost += 1
            await asyncio.sleep(POLL_SECONDS)

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.lags)
        return {
            "samples": len(ordered),
            "lost": self.lost,
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "p90_ms": round(percentile(ordered, 0.90) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
            "poll_interval_ms": POLL_SECONDS * 1000,
            "worst": self.worst(),
        }

    def worst(self, count: int = 8) -> list[list[float]]:
        """The slowest saves as ``[seconds into the run, lag ms]``: do they cluster in time?"""
        if not self.seen:
            return []
        start = min(at for at, _ in self.seen)
        slowest = sorted(self.seen, key=lambda seen: seen[1], reverse=True)[:count]
        return [[round(at - start, 2), round(lag * 1000, 1)] for at, lag in sorted(slowest)]


class ArchiveRate:
    """Rows in the ``events`` archive, sampled every ``every`` seconds."""

    def __init__(self, database_url: str, every: float = 0.5) -> None:
        self.database_url = database_url
        self.every = every
        self.samples: list[tuple[float, int]] = []

    async def count(self) -> int:
        conn = await asyncpg.connect(self.database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()

    async def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        conn = await asyncpg.connect(self.database_url)
        try:
            while not stop.is_set():
                rows = int(await conn.fetchval("SELECT count(*) FROM events"))
                self.samples.append((loop.time(), rows))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every)
        finally:
            await conn.close()

    async def wait_for(self, rows: int, timeout: float = 60.0) -> float:
        """Seconds until the archive holds ``rows`` rows."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while await self.count() < rows:
            if loop.time() - started > timeout:
                raise RuntimeError(f"the archive did not reach {rows} rows in {timeout}s")
            await asyncio.sleep(0.05)
        return loop.time() - started

    def figures(self) -> dict[str, Any]:
        if len(self.samples) < 2:
            return {}
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        steps = [
            (b[1] - a[1]) / (b[0] - a[0])
            for a, b in zip(self.samples, self.samples[1:], strict=False)
        ]
        return {
            "archived": n1 - n0,
            "events_per_s": round((n1 - n0) / (t1 - t0)),
            "peak_events_per_s": round(max(steps)),
        }


def cpu_seconds(pids: list[int]) -> float:
    """CPU used so far by these processes and their children, live or reaped."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(pid)
            for proc in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
    return total


def redis_cpu_seconds(url: str) -> float:
    """CPU seconds used so far by the Redis at ``url``, or by every node of its cluster."""
    client = redis.Redis.from_url(url)
    info = client.info("server")
    nodes = [url]
    if info.get("redis_mode") == "cluster":
        nodes = [f"redis://{address.split('@')[0]}" for address in client.cluster("NODES")]
    total = 0.0
    for node in nodes:
        cpu = redis.Redis.from_url(node).info("cpu")
        total += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return total


class CpuMeter:
    """CPU seconds per party (API, workers, Redis, Postgres, this generator) over a span."""

    def __init__(self, redis: Redis, database_url: str, api: list[int], workers: list[int]):
        self.redis, self.database_url, self.api, self.workers = redis, database_url, api, workers

    async def sample(self) -> tuple[dict[str, float], cpu.CpuSample]:
        machine = psutil.cpu_times()
        own = {
            "api": cpu_seconds(self.api),
            "workers": cpu_seconds(self.workers),
            "machine_busy": machine.user + machine.system + machine.nice + machine.softirq,
            "machine_all": sum(machine),
        }
        return own, await cpu.sample(self.redis, self.database_url)

    @staticmethod
    def spent(
        before: tuple[dict[str, float], cpu.CpuSample],
        after: tuple[dict[str, float], cpu.CpuSample],
        requests: int,
    ) -> dict[str, Any]:
        """CPU µs per request of each party, and how busy the whole machine was."""
        own = {name: after[0][name] - before[0][name] for name in before[0]}
        shared = cpu.used(before[1], after[1])
        parties = {
            "api": own["api"],
            "workers": own["workers"],
            "redis": shared.redis,
            "postgres": shared.postgres,
            "load_generator": shared.client,
        }
        wall = own["machine_all"]
        return {
            "us_per_request": {name: round(s / requests * 1e6) for name, s in parties.items()},
            "machine_busy_fraction": round(own["machine_busy"] / wall, 2) if wall else None,
        }
