"""Projector and replay throughput: ``python -m bench projector [--events N] [--batch-size B]``.

Starts a private redis-server and creates a Postgres database (both gone afterwards), appends
N events of the realistic mix (progress saves, session starts, heartbeats, ends) to one shard,
then measures, in this one process (= one worker):

* projector: draining the shard into the archive plus every registered projection;
* replay: ``medio replay`` (rebuild every projection from the archive and swap it in), and
  ``medio replay --verify``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable
from typing import Any

import msgspec

from adapters.container import Container
from adapters.settings import Settings, load_settings
from bench import cpu
from bench.services import postgres_database, redis_server
from bench.workload import append_all, realistic_events
from medio.migrate import upgrade
from projections.apply import ProjectionSet
from projections.archive import Archive
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from services.container import build_container

TARGET_PROJECTOR = 0.4  # all projections, as a share of the archive-only projector's rate
TARGET_REPLAY = 2.5  # replay, in times the live projector's rate


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench projector", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="events to append")
    parser.add_argument("--batch-size", type=int, default=None, help="projector batch size")
    return parser.parse_args(argv)


async def _measure(settings: Settings, events: int) -> dict[str, Any]:
    container = build_container(settings, pool_size=6)
    try:
        return await _run(container, events)
    finally:
        await container.close()


async def _timed(
    container: Container, name: str, events: int, work: Awaitable[Any]
) -> tuple[Any, dict[str, Any]]:
    """Run ``work``; its wall-clock and per-party CPU figures for ``events`` events."""
    url = container.settings.database_url or ""
    before = await cpu.sample(container.redis, url)
    started = time.perf_counter()
    result = await work
    seconds = time.perf_counter() - started
    spent = cpu.used(before, await cpu.sample(container.redis, url))
    figures = {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_us_per_event": spent.per_event_us(events),
        "uncontended_events_per_s": round(events / spent.total) if spent.total else None,
    }
    return result, {name: figures}


async def _run(container: Container, events: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    items = list(realistic_events(events, seed=11, profiles=2000))
    _, found = await _timed(container, "append", events, append_all(container.redis, 1, items))
    figures.update(found)

    projected, found = await _timed(
        container, "projector", events, project_pending(container, timeout=3600)
    )
    assert projected == events, f"projected {projected} of {events}"
    figures.update(found)

    rebuilt, found = await _timed(container, "replay", events, rebuild(container))
    found["replay"]["replay_phase_events_per_s"] = round(rebuilt.events_per_second)
    figures.update(found)
    checked, found = await _timed(container, "verify", events, verify(container))
    assert not checked.differences, checked.differences
    figures.update(found)

    more = list(realistic_events(events, seed=12, profiles=2000))
    await append_all(container.redis, 1, more)
    archive_only = ProjectionSet(sql=[Archive()], redis=[])
    _, found = await _timed(
        container,
        "projector_archive_only",
        events,
        project_pending(container, timeout=3600, projections=archive_only),
    )
    figures.update(found)
    return {
        "events": events,
        "batch_size": container.settings.projector_batch_size,
        "projections": [c.name for c in SQL_PROJECTIONS] + [c.name for c in REDIS_PROJECTIONS],
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        **figures,
        "ratios": _ratios(figures),
        "targets": {
            "projector_vs_archive_only": TARGET_PROJECTOR,
            "replay_vs_projector": TARGET_REPLAY,
        },
    }


def _ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The design's two ratios: all projections vs the archive alone, replay vs live."""
    projector = figures["projector"]["events_per_s"]
    return {
        "projector_vs_archive_only": round(
            projector / figures["projector_archive_only"]["events_per_s"], 3
        ),
        "replay_vs_projector": round(figures["replay"]["events_per_s"] / projector, 2),
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark; print and return its figures."""
    args = _parse(argv)
    with redis_server() as redis_url, postgres_database() as database_url:
        settings = load_settings(env_file=None, redis_url=redis_url, database_url=database_url)
        if args.batch_size:
            settings = msgspec.structs.replace(settings, projector_batch_size=args.batch_size)
        upgrade(settings)
        result = asyncio.run(_measure(settings, args.events))
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    print(
        f"projector bench: {result['events']:,} events, batch {result['batch_size']}, "
        f"projections: {', '.join(result['projections'])}; load average "
        f"{result['load_average'][0]} -> {result['load_average'][1]} on {result['cpus']} CPUs"
    )
    print(
        f"  {'':<24} {'events/s':>10}   CPU µs/event: {'client':>7} {'postgres':>8} "
        f"{'redis':>6}   uncontended est."
    )
    for name in ("append", "projector", "projector_archive_only", "replay", "verify"):
        row = result[name]
        us = row["cpu_us_per_event"]
        print(
            f"  {name:<24} {row['events_per_s']:>10,}   {'':>13}{us['client']:>7} "
            f"{us['postgres']:>8} {us['redis']:>6}   {row['uncontended_events_per_s'] or 0:>10,}"
        )
    ratios = result["ratios"]
    print(
        f"  all projections / archive only: {ratios['projector_vs_archive_only']:.0%} "
        f"(target >= {TARGET_PROJECTOR:.0%}); replay / projector: "
        f"{ratios['replay_vs_projector']} times (target >= {TARGET_REPLAY:g})"
    )
    print(
        f"  replay phase alone (no pause/swap): {result['replay']['replay_phase_events_per_s']:,}"
    )
