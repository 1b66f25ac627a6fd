"""End-to-end lag (2xx -> visible in the projection) at a steady rate of ``POST /api/progress``.

``python -m bench lag [--rate 2000] [--seconds 20] [--sample 20] [--users 2000]
[--api-workers 2] [--projector-workers 1] [--shards 1]``

Starts a private redis-server, a Postgres database, ``medio api`` (production settings, rate
limiting on, many users so none is limited) and ``medio worker`` processes (the projector runs
as an RQ job in them), then offers ``rate`` saves per second, open loop (``bench.openloop``),
for ``seconds``. One request in ``sample`` saves a title of its own; from its 2xx a probe polls
the resume key (what ``GET /api/progress/{clerk}/{tmdb}`` reads) with one ``MGET`` of every
pending key per poll, and the time until the value is there is that request's lag. The
projector's observed throughput is the growth of the ``events`` archive over time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import psutil  # type: ignore[import-untyped]
from redis.asyncio import Redis

from bench import cpu, pyspy
from bench.ingest import medio_env, tokens_for
from bench.openloop import OpenLoop, percentile, post_json
from bench.services import medio_command, postgres_database, process, redis_server
from medio.embedded import free_port

TARGET_P99_MS = 250
POLL_SECONDS = 0.002
GIVE_UP_SECONDS = 30.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench lag", description=__doc__)
    parser.add_argument("--rate", type=float, default=2000, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20, help="length of the steady run")
    parser.add_argument("--sample", type=int, default=20, help="measure lag of 1 in N requests")
    parser.add_argument("--users", type=int, default=2000, help="distinct users (tokens)")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--projector-workers", type=int, default=1, help="medio worker processes")
    parser.add_argument("--shards", type=int, default=1, help="MEDIO_STREAM_SHARDS")
    parser.add_argument("--connections", type=int, default=256, help="most open connections")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the API and workers into this folder"
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Stack:
    """A running Medio: where it listens and which processes are its."""

    port: int
    redis_url: str
    database_url: str
    api_pids: list[int]
    worker_pids: list[int]


@contextlib.contextmanager
def medio_stack(args: argparse.Namespace) -> Iterator[Stack]:
    """Redis, a database, the API and the workers, all gone afterwards."""
    with redis_server() as redis_url, postgres_database() as database_url:
        env = medio_env(redis_url, database_url, MEDIO_STREAM_SHARDS=str(args.shards))
        subprocess.run(
            medio_command("migrate"),
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        api = medio_command("api", "--port", str(port), "--workers", str(args.api_workers))
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(process(api, env=env, port=port))
            workers = [
                stack.enter_context(process(medio_command("worker"), env=env))
                for _ in range(args.projector_workers)
            ]
            yield Stack(port, redis_url, database_url, [server.pid], [w.pid for w in workers])


class LagProbe:
    """Resume keys awaited since their save's 2xx; one ``MGET`` of all of them per poll."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pending: dict[str, float] = {}  # resume key -> loop time of the 2xx
        self.lags: list[float] = []
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
                        self.lags.append(now - self.pending.pop(key))
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
        }


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


def _cpu_seconds(pids: list[int]) -> float:
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


class CpuMeter:
    """CPU seconds per party (API, workers, Redis, Postgres, this generator) over a span."""

    def __init__(self, redis: Redis, stack: Stack) -> None:
        self.redis, self.stack = redis, stack

    async def sample(self) -> tuple[dict[str, float], cpu.CpuSample]:
        machine = psutil.cpu_times()
        own = {
            "api": _cpu_seconds(self.stack.api_pids),
            "workers": _cpu_seconds(self.stack.worker_pids),
            "machine_busy": machine.user + machine.system + machine.nice + machine.softirq,
            "machine_all": sum(machine),
        }
        return own, await cpu.sample(self.redis, self.stack.database_url)

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


@contextlib.contextmanager
def _profiled(args: argparse.Namespace, stack: Stack) -> Iterator[dict[str, Path]]:
    """py-spy on the API and the workers during the steady run, with ``--profile``."""
    if args.profile is None:
        yield {}
        return
    pids = {"api": stack.api_pids[0], **{f"worker{i}": p for i, p in enumerate(stack.worker_pids)}}
    with pyspy.recording(pids, args.seconds, args.profile) as files:
        yield files


async def _drive(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    port = stack.port
    users = [f"user_{i}" for i in range(args.users)]
    tokens = tokens_for(users)
    encode = msgspec.json.encode

    def request(i: int, sampled: bool) -> bytes:
        user = i % len(users)
        tmdb = f"lag-{i}" if sampled else str(i % 500)
        body = encode({"clerkId": users[user], "tmdbId": tmdb, "currentTime": i % 7200})
        return post_json(port, "/api/progress", tokens[user], body)

    redis = Redis.from_url(stack.redis_url)
    archive = ArchiveRate(stack.database_url)
    meter = CpuMeter(redis, stack)
    loop_gen = OpenLoop(port, max_connections=args.connections)
    try:
        # Every user once (their row, their token in each process's cache), then quiet.
        warm = await loop_gen.run(min(args.rate, 1000), len(users), lambda i: request(i, False))
        await archive.wait_for(warm.ok)

        probe = LagProbe(redis)
        count = int(args.rate * args.seconds)
        base = len(users)

        def on_reply(i: int, status: int, at: float) -> None:
            if 200 <= status < 300 and (i % args.sample) == 0:
                probe.acknowledged(f"resume:{users[(base + i) % len(users)]}:lag-{base + i}", at)

        stop = asyncio.Event()
        watchers = [
            asyncio.create_task(probe.watch(stop)),
            asyncio.create_task(archive.watch(stop)),
        ]
        with _profiled(args, stack) as profiles:
            cpu_before = await meter.sample()
            load = await loop_gen.run(
                args.rate, count, lambda i: request(base + i, i % args.sample == 0), on_reply
            )
            cpu_after = await meter.sample()
        catch_up = await archive.wait_for(warm.ok + load.ok)
        stop.set()
        await asyncio.gather(*watchers)
    finally:
        loop_gen.close()
        await redis.aclose()
    return {
        "load": load.figures(),
        "lag": probe.figures(),
        "projector": {**archive.figures(), "catch_up_after_last_reply_s": round(catch_up, 2)},
        "cpu": CpuMeter.spent(cpu_before, cpu_after, count),
        "profiles": {name: pyspy.summary(path) for name, path in profiles.items()},
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark; print and return its figures."""
    args = _parse(argv)
    load_before = os.getloadavg()[0]
    with medio_stack(args) as stack:
        figures = asyncio.run(_drive(args, stack))
    result = {
        "rate": args.rate,
        "seconds": args.seconds,
        "sample_one_in": args.sample,
        "users": args.users,
        "api_workers": args.api_workers,
        "projector_workers": args.projector_workers,
        "shards": args.shards,
        "cpus": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        **figures,
        "targets": {"lag_p99_ms": TARGET_P99_MS},
    }
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    load, lag, projector = result["load"], result["lag"], result["projector"]
    verdict = "ok" if (lag["p99_ms"] or 0) <= TARGET_P99_MS and not lag["lost"] else "MISSED"
    print(
        f"lag bench: {result['rate']:g} req/s for {result['seconds']:g} s, "
        f"{result['api_workers']} API + {result['projector_workers']} worker process(es), "
        f"{result['cpus']} CPUs, load average {result['load_average_before']}"
    )
    print(
        f"  offered {load['sent_rate']:,} req/s, {load['ok']:,} 2xx, statuses {load['statuses']}, "
        f"errors {load['errors']}; reply p50 {load['latency_p50_ms']} ms "
        f"p99 {load['latency_p99_ms']} ms"
    )
    print(
        f"  lag 2xx -> visible ({lag['samples']} samples, {lag['lost']} lost): "
        f"p50 {lag['p50_ms']} ms  p99 {lag['p99_ms']} ms  max {lag['max_ms']} ms  "
        f"(target p99 <= {TARGET_P99_MS} ms: {verdict})"
    )
    use = result["cpu"]
    print(
        f"  CPU µs per request: {use['us_per_request']}; machine busy "
        f"{use['machine_busy_fraction']:.0%}"
    )
    print(
        f"  projector archived {projector.get('events_per_s', 0):,} events/s "
        f"(peak {projector.get('peak_events_per_s', 0):,}/s), caught up "
        f"{projector['catch_up_after_last_reply_s']} s after the last reply"
    )
    for name, found in result["profiles"].items():
        pyspy.print_summary(name, found)
