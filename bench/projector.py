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
import time
from typing import Any

import msgspec

from bench.services import postgres_database, redis_server
from bench.workload import append_all, realistic_events
from medio.bootstrap import Container, build_container
from medio.migrate import upgrade
from medio.settings import Settings, load_settings
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.replay import rebuild, verify
from projections.runtime import project_pending

TARGET_PROJECTOR = 20_000
TARGET_REPLAY = 50_000


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench projector", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="events to append")
    parser.add_argument("--batch-size", type=int, default=None, help="projector batch size")
    return parser.parse_args(argv)


async def _measure(settings: Settings, events: int) -> dict[str, Any]:
    container = build_container(settings, pool_size=4)
    try:
        return await _run(container, events)
    finally:
        await container.close()


async def _run(container: Container, events: int) -> dict[str, Any]:
    started = time.perf_counter()
    await append_all(container.redis, 1, realistic_events(events, seed=11, profiles=2000))
    append_seconds = time.perf_counter() - started

    started = time.perf_counter()
    projected = await project_pending(container, timeout=3600)
    project_seconds = time.perf_counter() - started
    assert projected == events, f"projected {projected} of {events}"

    rebuilt = await rebuild(container)
    checked = await verify(container)
    assert not checked.differences, checked.differences
    return {
        "events": events,
        "batch_size": container.settings.projector_batch_size,
        "projections": [c.name for c in SQL_PROJECTIONS] + [c.name for c in REDIS_PROJECTIONS],
        "append_events_per_s": round(events / append_seconds),
        "projector_seconds": round(project_seconds, 3),
        "projector_events_per_s": round(events / project_seconds),
        "replay_seconds": round(rebuilt.seconds, 3),
        "replay_events_per_s": round(rebuilt.events_per_second),
        "verify_events_per_s": round(checked.events_per_second),
        "targets": {
            "projector_events_per_s": TARGET_PROJECTOR,
            "replay_events_per_s": TARGET_REPLAY,
        },
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
        f"projections: {', '.join(result['projections'])}"
    )
    rows = [
        ("append (pipelined XADD)", result["append_events_per_s"], None),
        ("projector, one process", result["projector_events_per_s"], TARGET_PROJECTOR),
        ("replay (rebuild + swap)", result["replay_events_per_s"], TARGET_REPLAY),
        ("replay --verify", result["verify_events_per_s"], TARGET_REPLAY),
    ]
    for name, value, target in rows:
        verdict = "" if target is None else ("  ok" if value >= target else f"  < {target:,}")
        print(f"  {name:<26} {value:>10,} events/s{verdict}")
