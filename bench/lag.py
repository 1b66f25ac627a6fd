"""End-to-end capacity, lag (acknowledged -> visible) at half of it, and the CPU cost of a save.

``python -m bench lag [--rate R] [--capacity-seconds 8] [--seconds 20] [--sample 20]
[--users 2000] [--api-workers 2] [--projector-workers 1] [--shards 1]
[--phases api,direct,bare] [--profile DIR]``

Starts a private redis-server, a Postgres database, ``medio api`` (production settings, rate
limiting on, many users so none is limited), ``medio worker`` processes (the projector runs
as an RQ job in them) and the bare Litestar endpoint (``bench.bare_app``, as many processes as
the API). First, unless ``--rate`` is given, the **end-to-end capacity**: wrk saturates
``POST /api/progress`` (64 connections) for ``capacity-seconds``, and the saves accepted are
divided by the time until the archive held them all (the API's time plus the projector's
catch-up): the rate the whole system sustains. Then phases of ``seconds`` each at half of
that rate (or ``rate``) saves per second:

* ``api``: ``POST /api/progress``, open loop (``bench.openloop``): the whole path. On a small
  machine the API, the projector and this generator share the cores, so the rate the API
  actually accepted is reported next to the target.
* ``direct``: the same ``progress.saved`` events appended to the stream as the API appends
  them (``XADD``), at exactly ``rate``: the projector at the target rate, without the API.
* ``bare``: the same requests to the bare endpoint, which accepts and drops them: the CPU of
  one bare request, against which the ``api`` phase's CPU per accepted save (API + workers +
  Redis + Postgres) is the end-to-end cost of a save.

One save in ``sample`` is of a title of its own; from its acknowledgement (2xx, or the XADD
reply) a probe polls its resume key (what ``GET /api/progress/{clerk}/{tmdb}`` reads) and the
time until it is there is that save's lag. The projector's observed throughput is the growth
of the ``events`` archive; CPU per request is measured for every party (the probe's polling
and the archive counter are part of the Redis and Postgres figures: a few µs per save).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from adapters.eventlog import entry_fields, shard_for, stream_name
from bench import pyspy, wrk
from bench.ingest import medio_env, tokens_for
from bench.observe import ArchiveRate, CpuMeter, LagProbe
from bench.openloop import OpenLoop, Outcome, post_json
from bench.services import (
    bare_command,
    medio_command,
    migrate,
    postgres_database,
    process,
    redis_server,
)
from domain.events import ProgressSaved
from medio.embedded import free_port

TARGET_P99_MS = 250
TARGET_COST = 6.0  # a save's end-to-end CPU, in bare requests' CPU
PHASES = ("api", "direct", "bare")
TICK_SECONDS = 0.002

Acknowledged = Callable[[int, int, float], None]  # (index, status, loop time)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench lag", description=__doc__)
    parser.add_argument(
        "--rate", type=float, default=None, help="saves per second [half the measured capacity]"
    )
    parser.add_argument(
        "--capacity-seconds", type=int, default=8, help="length of the capacity measurement"
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--sample", type=int, default=20, help="measure lag of 1 in N saves")
    parser.add_argument("--users", type=int, default=2000, help="distinct users (tokens)")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--projector-workers", type=int, default=1, help="medio worker processes")
    parser.add_argument("--shards", type=int, default=1, help="MEDIO_STREAM_SHARDS")
    parser.add_argument("--connections", type=int, default=256, help="most open connections")
    parser.add_argument("--phases", default=",".join(PHASES), help="api, direct or both")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the API and workers into this folder"
    )
    args = parser.parse_args(argv)
    args.phases = [p for p in args.phases.split(",") if p]
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


@dataclass(frozen=True)
class Stack:
    """A running Medio: where it listens and which processes are its."""

    port: int
    redis_url: str
    database_url: str
    api_pids: list[int]
    worker_pids: list[int]
    bare_port: int
    bare_pids: list[int]


@contextlib.contextmanager
def medio_stack(args: argparse.Namespace) -> Iterator[Stack]:
    """Redis, a database, the API and the workers, all gone afterwards."""
    with redis_server() as redis_url, postgres_database() as database_url:
        env = medio_env(redis_url, database_url, MEDIO_STREAM_SHARDS=str(args.shards))
        migrate(env)
        port, bare_port = free_port(), free_port()
        api = medio_command("api", "--port", str(port), "--workers", str(args.api_workers))
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(process(api, env=env, port=port))
            workers = [
                stack.enter_context(process(medio_command("worker"), env=env))
                for _ in range(args.projector_workers)
            ]
            bare = stack.enter_context(
                process(bare_command(bare_port, args.api_workers), env=env, port=bare_port)
            )
            yield Stack(
                port,
                redis_url,
                database_url,
                [server.pid],
                [w.pid for w in workers],
                bare_port,
                [bare.pid],
            )


@contextlib.contextmanager
def _profiled(args: argparse.Namespace, stack: Stack, phase: str) -> Iterator[dict[str, Path]]:
    """py-spy on the API and the workers during a phase, with ``--profile``."""
    if args.profile is None:
        yield {}
        return
    pids = {"api": stack.api_pids[0], **{f"worker{i}": p for i, p in enumerate(stack.worker_pids)}}
    with pyspy.recording(pids, args.seconds, args.profile / phase) as files:
        yield files


class Saves:
    """The saves of the run: save ``i`` is by user ``i mod users``; sampled ones own a title."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.users = [f"user_{i}" for i in range(args.users)]
        self.tokens = tokens_for(self.users)
        self.sample = int(args.sample)
        self.port = port
        self._encode = msgspec.json.Encoder().encode

    def sampled(self, i: int) -> bool:
        return i % self.sample == 0

    def title(self, i: int) -> str:
        return f"lag-{i}" if self.sampled(i) else str(i % 500)

    def resume_key(self, i: int) -> str:
        return f"resume:{self.users[i % len(self.users)]}:{self.title(i)}"

    def request(self, i: int, port: int | None = None) -> bytes:
        """Save ``i`` as an HTTP request, to Medio or to ``port``."""
        user = i % len(self.users)
        body = {"clerkId": self.users[user], "tmdbId": self.title(i), "currentTime": i % 7200}
        return post_json(port or self.port, "/api/progress", self.tokens[user], self._encode(body))

    def event(self, i: int) -> tuple[str, ProgressSaved]:
        user = self.users[i % len(self.users)]
        return user, ProgressSaved(
            occurred_at=datetime.now(UTC),
            actor=user,
            clerk_id=user,
            tmdb_id=self.title(i),
            current_time=float(i % 7200),
        )


async def _append_steadily(
    redis: Redis,
    shards: int,
    rate: float,
    first: int,
    count: int,
    saves: Saves,
    on_ack: Acknowledged,
) -> Outcome:
    """``XADD`` saves ``first`` .. ``first + count`` at ``rate``: the due ones each tick."""
    loop = asyncio.get_running_loop()
    outcome = Outcome(planned=count, rate=rate)
    start = loop.time()
    done = 0
    while done < count:
        due = min(count, int((loop.time() - start) * rate) + 1)
        if due > done:
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(first + done, first + due):
                    key, event = saves.event(i)
                    pipe.xadd(stream_name(shard_for(key, shards)), entry_fields(event))  # type: ignore[arg-type]
                outcome.first_sent = outcome.first_sent or loop.time()
                await pipe.execute()
            now = outcome.last_sent = loop.time()
            for i in range(first + done, first + due):
                outcome.statuses[200] += 1
                on_ack(i, 200, now)
            done = due
        await asyncio.sleep(max(TICK_SECONDS, start + done / rate - loop.time()))
    return outcome


async def _phase(
    stack: Stack,
    args: argparse.Namespace,
    name: str,
    already: int,
    drive: Callable[[Acknowledged], Awaitable[Outcome]],
    saves: Saves,
) -> dict[str, Any]:
    """Run one phase with the probe, the archive counter and the CPU meter around it."""
    redis = Redis.from_url(stack.redis_url)
    try:
        probe, archive = LagProbe(redis), ArchiveRate(stack.database_url)
        meter = CpuMeter(redis, stack.database_url, stack.api_pids, stack.worker_pids)

        def on_ack(i: int, status: int, at: float) -> None:
            if 200 <= status < 300 and saves.sampled(i):
                probe.acknowledged(saves.resume_key(i), at)

        stop = asyncio.Event()
        watchers = [
            asyncio.create_task(probe.watch(stop)),
            asyncio.create_task(archive.watch(stop)),
        ]
        with _profiled(args, stack, name) as profiles:
            before = await meter.sample()
            outcome = await drive(on_ack)
            after = await meter.sample()
        catch_up = await archive.wait_for(already + outcome.ok)
        stop.set()
        await asyncio.gather(*watchers)
    finally:
        await redis.aclose()
    return {
        "load": outcome.figures(),
        "lag": probe.figures(),
        "projector": {**archive.figures(), "catch_up_after_last_ack_s": round(catch_up, 2)},
        "cpu": CpuMeter.spent(before, after, max(1, outcome.ok)),
        "profiles": {name: pyspy.summary(path) for name, path in profiles.items()},
    }


async def _capacity(
    args: argparse.Namespace, stack: Stack, saves: Saves, archived: int
) -> dict[str, Any]:
    """Saves per second the whole system sustains: wrk saturates the API, then the projector
    catches up; the saves accepted over the time until the archive held them all."""
    script = wrk.write_script(saves.tokens, saves.users, wrk.PROGRESS_BODY, wrk.PROGRESS_PATH)
    try:
        loaded = await asyncio.to_thread(wrk.run, stack.port, script, args.capacity_seconds)
    finally:
        script.unlink()
    accepted = loaded.requests - loaded.non2xx
    catch_up = await ArchiveRate(stack.database_url).wait_for(archived + accepted, timeout=300)
    api_seconds = loaded.requests / loaded.rps
    return {
        "accepted": accepted,
        "non2xx": loaded.non2xx,
        "api_saves_per_s": round(accepted / api_seconds),
        "catch_up_s": round(catch_up, 2),
        "saves_per_s": round(accepted / (api_seconds + catch_up)),
    }


async def _bare(args: argparse.Namespace, stack: Stack, saves: Saves) -> dict[str, Any]:
    """The same requests at the same rate to the bare endpoint: its CPU per request."""
    client = OpenLoop(stack.bare_port, max_connections=args.connections)
    redis = Redis.from_url(stack.redis_url)
    meter = CpuMeter(redis, stack.database_url, stack.bare_pids, [])
    try:
        before = await meter.sample()
        outcome = await client.run(
            args.rate, int(args.rate * args.seconds), lambda i: saves.request(i, stack.bare_port)
        )
        after = await meter.sample()
    finally:
        client.close()
        await redis.aclose()
    return {"load": outcome.figures(), "cpu": CpuMeter.spent(before, after, max(1, outcome.ok))}


def _cost(figures: dict[str, Any]) -> dict[str, Any]:
    """CPU of one accepted save end to end (API, workers, Redis, Postgres) in bare requests."""
    used = figures["api"]["cpu"]["us_per_request"]
    save = sum(used[party] for party in ("api", "workers", "redis", "postgres"))
    bare = figures["bare"]["cpu"]["us_per_request"]["api"]
    return {"save_us": save, "bare_us": bare, "ratio": round(save / bare, 2) if bare else None}


async def _drive(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    saves = Saves(args, stack.port)
    figures: dict[str, Any] = {}
    client = OpenLoop(stack.port, max_connections=args.connections)
    redis = Redis.from_url(stack.redis_url)
    try:
        # Every user once (their row, their token in each process's cache), then quiet.
        warm = await client.run(1000, len(saves.users), saves.request)
        archived = warm.ok
        await ArchiveRate(stack.database_url).wait_for(archived)
        if args.rate is None:
            figures["capacity"] = await _capacity(args, stack, saves, archived)
            archived += figures["capacity"]["accepted"]
            args.rate = figures["capacity"]["saves_per_s"] / 2
        count = int(args.rate * args.seconds)
        first = len(saves.users)
        if "api" in args.phases:

            async def through_api(on_ack: Acknowledged) -> Outcome:
                return await client.run(
                    args.rate,
                    count,
                    lambda i: saves.request(first + i),
                    lambda i, status, at: on_ack(first + i, status, at),
                )

            figures["api"] = await _phase(stack, args, "api", archived, through_api, saves)
            archived += figures["api"]["load"]["ok"]
            first += count
        if "direct" in args.phases:

            async def appended(on_ack: Acknowledged) -> Outcome:
                return await _append_steadily(
                    redis, args.shards, args.rate, first, count, saves, on_ack
                )

            figures["direct"] = await _phase(stack, args, "direct", archived, appended, saves)
        if "bare" in args.phases:
            figures["bare"] = await _bare(args, stack, saves)
            if "api" in figures:
                figures["cost"] = _cost(figures)
    finally:
        client.close()
        await redis.aclose()
    return figures


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
        "targets": {"lag_p99_ms": TARGET_P99_MS, "cost_ratio": TARGET_COST},
    }
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    print(
        f"lag bench: {result['rate']:g} saves/s for {result['seconds']:g} s per phase, "
        f"{result['api_workers']} API + {result['projector_workers']} worker process(es), "
        f"{result['cpus']} CPUs, load average {result['load_average_before']}"
    )
    if "capacity" in result:
        capacity = result["capacity"]
        print(
            f"  [capacity] {capacity['saves_per_s']:,} saves/s end to end "
            f"({capacity['accepted']:,} accepted at {capacity['api_saves_per_s']:,}/s, "
            f"archived {capacity['catch_up_s']} s after the load stopped)"
        )
    for phase in ("api", "direct"):
        if phase not in result:
            continue
        load, lag, projector = (result[phase][k] for k in ("load", "lag", "projector"))
        verdict = "ok" if (lag["p99_ms"] or 0) <= TARGET_P99_MS and not lag["lost"] else "MISSED"
        replies = (
            f"; reply (from due) p50 {load['latency_p50_ms']} ms p99 {load['latency_p99_ms']} ms"
            if phase == "api"
            else ""
        )
        print(
            f"  [{phase}] sent {load['sent_rate']:,}/s of {load['target_rate']:g}/s, "
            f"{load['ok']:,} ok, statuses {load['statuses']}, errors {load['errors']}{replies}"
        )
        print(
            f"  [{phase}] lag ack -> visible ({lag['samples']} samples, {lag['lost']} lost): "
            f"p50 {lag['p50_ms']} ms  p99 {lag['p99_ms']} ms  max {lag['max_ms']} ms  "
            f"(target p99 <= {TARGET_P99_MS} ms: {verdict})"
        )
        use = result[phase]["cpu"]
        print(
            f"  [{phase}] CPU µs per save: {use['us_per_request']}; machine busy "
            f"{use['machine_busy_fraction']:.0%}; projector archived "
            f"{projector.get('events_per_s', 0):,}/s "
            f"(peak {projector.get('peak_events_per_s', 0):,}/s), "
            f"caught up {projector['catch_up_after_last_ack_s']} s after the last ack"
        )
        for name, found in result[phase]["profiles"].items():
            pyspy.print_summary(f"{phase}/{name}", found)
    if "cost" in result:
        cost = result["cost"]
        print(
            f"  [cost] one save {cost['save_us']} µs of CPU (API + workers + Redis + Postgres), "
            f"one bare request {cost['bare_us']} µs: {cost['ratio']} times "
            f"(target <= {TARGET_COST:g})"
        )
