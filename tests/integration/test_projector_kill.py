"""``kill -9`` at random points: nothing lost, nothing applied twice, order kept.

Real ``medio worker`` processes (RQ, projector jobs, the supervisor) project 20,000
events of the realistic mix on two shards while appends continue; a worker and its job are
SIGKILLed at random moments just after the workers made progress, and restarted. Then the
archive must hold every appended event once, each key's events in append order, and every
projection must equal a clean replay of the archive.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from projector_env import Stack, archived_count, isolated_stack, kill_9, start_worker

from adapters.container import Container
from adapters.eventlog import shard_for
from adapters.settings import Settings
from adapters.tables import events
from bench.workload import append_all, realistic_events
from projections.replay import verify

EVENTS = 20_000
KILLS = 8  # one chunk of events appended before each kill, so every kill finds work to do
SHARDS = 2
DEADLINE_SECONDS = 50


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack(
        stream_shards=SHARDS,
        projector_lock_ttl_seconds=1.0,
        projector_run_seconds=3.0,
        projector_batch_size=1000,
        log_level="WARNING",
    ) as built:
        yield built


async def _wait_for_progress(container: Container, above: int, timeout: float = 15) -> int:
    """The archive count once it exceeds ``above`` (the workers are projecting)."""
    deadline = time.monotonic() + timeout
    while (count := await archived_count(container)) <= above:
        assert time.monotonic() < deadline, f"no progress past {above} archived events"
        await asyncio.sleep(0.05)
    return count


@pytest.mark.slow
async def test_sigkilled_workers_lose_nothing_double_nothing_and_keep_per_key_order(
    stack: Stack, iso: Container
) -> None:
    rng = random.Random(os.getpid())
    items = list(realistic_events(EVENTS, seed=21, profiles=300))
    keys: dict[tuple[int, str], str] = {}  # (shard, stream id) -> ordering key
    workers = [start_worker(stack) for _ in range(SHARDS + 1)]  # as ``medio dev`` runs them
    started = time.monotonic()
    archived = 0
    try:
        for round_ in range(KILLS):
            chunk = items[round_ * EVENTS // KILLS : (round_ + 1) * EVENTS // KILLS]
            ids = await append_all(iso.redis, SHARDS, chunk)
            for stream_id, (key, _) in zip(ids, chunk, strict=True):
                keys[(shard_for(key, SHARDS), stream_id)] = key
            archived = await _wait_for_progress(iso, archived)
            await asyncio.sleep(rng.uniform(0, 0.4))
            victim = rng.randrange(len(workers))
            kill_9(workers[victim])
            workers[victim] = start_worker(stack)
        while (count := await archived_count(iso)) < EVENTS:
            assert time.monotonic() - started < DEADLINE_SECONDS, f"only {count} archived"
            await asyncio.sleep(0.1)
    finally:
        for worker in workers:
            kill_9(worker)

    async with iso.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(events.c.stream_id, events.c.shard).order_by(events.c.position)
            )
        ).all()
    assert len(rows) == EVENTS
    assert {(shard, stream_id) for stream_id, shard in rows} == set(keys)  # each one, once
    appended_order: dict[str, list[str]] = {}
    for shard_and_id, key in keys.items():  # dicts keep insertion (append) order
        appended_order.setdefault(key, []).append(shard_and_id[1])
    archived_order: dict[str, list[str]] = {}
    for stream_id, shard in rows:
        archived_order.setdefault(keys[(shard, stream_id)], []).append(stream_id)
    assert archived_order == appended_order
    report = await verify(iso)
    assert report.differences == {}
    assert report.events == EVENTS
