"""Shards rebalance across real ``medio worker`` processes as they come and go.

Eight shards; one worker, then two, then three are started, then one is stopped (SIGTERM) and
one SIGKILLed, while events are appended all along and every shard lock is sampled every
20 ms. Each worker's projector job lasts ``RUN_SECONDS``, so jobs end and hand their shards to
the next ones throughout. Asserted:

* one holder at a time, projecting only while it holds the lock: a shard's lock, once held by
  another run, never shows the earlier holder again; no sample shows a worker that has exited
  (nor a killed one past the TTL); every read a run made of a shard's stream (the consumer
  group's idle times, sampled with the locks; a run's consumer name is its lock token) falls
  within the time it held that shard's lock; and every appended event is archived exactly
  once, with every projection's lag back to 0;
* after each step every shard has a holder among the live workers, and no worker holds more
  than its fair share, within the lock TTL plus ``MARGIN_SECONDS``;
* with three workers no worker holds more than 3 of the 8 shards, for as long as they run.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
import pytest
import sqlalchemy as sa
from projector_env import Stack, isolated_stack, kill_9, start_worker

from adapters.container import Container
from adapters.eventlog import shard_for, stream_name
from adapters.settings import Settings
from adapters.tables import events
from bench.workload import append_all, realistic_events
from projections.lag import projection_lag
from projections.locks import lock_key
from projections.streams import GROUP
from workers.balancer import WORKERS_KEY

SHARDS = 8
TTL_SECONDS = 1.0
RUN_SECONDS = 2.0  # projector jobs end and hand their shards to the next job all along
MARGIN_SECONDS = 3.0  # a round, a step, and a projector's start on a busy 2-core machine
START_SECONDS = 20.0  # a new process imports Medio and sends its first heartbeat
SAMPLE_SECONDS = 0.02
APPEND_EVERY_SECONDS = 0.05
APPEND_CHUNK = 25  # 500 events a second
STABLE_SECONDS = 2.0
RECENT_MS = 2000  # reads sampled (an older one was sampled when it was recent)
CLOCK_SLACK = 0.06  # a sample's time against Redis's idle times, rounding included


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:  # after the run's environment is set
    with isolated_stack(
        stream_shards=SHARDS,
        projector_lock_ttl_seconds=TTL_SECONDS,
        projector_run_seconds=RUN_SECONDS,
        projector_batch_size=500,
        log_level="WARNING",
    ) as built:
        yield built


def pid_of(token: bytes) -> int:
    """A lock's token is its run's consumer name, ``host-pid-random``."""
    return int(token.decode().rsplit("-", 2)[1])


@dataclass
class Samples:
    """Every sample of the shard locks: (time, token of each shard or None), and of the
    streams' consumers: (time, shard, consumer name, when it last read)."""

    taken: list[tuple[float, list[bytes | None]]] = field(default_factory=list)
    reads: set[tuple[int, bytes, float]] = field(default_factory=set)
    gone: dict[int, float] = field(default_factory=dict)  # pid -> when it can hold nothing

    def holders(self, tokens: list[bytes | None]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for token in tokens:
            if token is not None:
                counts[pid_of(token)] = counts.get(pid_of(token), 0) + 1
        return counts

    def check_one_holder_at_a_time(self) -> None:
        for shard in range(SHARDS):
            seen: list[bytes] = []
            for _, tokens in self.taken:
                token = tokens[shard]
                if token is not None and (not seen or seen[-1] != token):
                    assert token not in seen, f"shard {shard}: {token!r} came back"
                    seen.append(token)
        for at, tokens in self.taken:
            for token in tokens:
                if token is not None and pid_of(token) in self.gone:
                    assert at < self.gone[pid_of(token)], f"{token!r} held after its worker went"

    def check_reads_under_the_lock(self) -> None:
        """Every read falls between the sample before its run's lock first showed and the
        sample after it last did."""
        held: dict[tuple[int, bytes], tuple[float, float]] = {}
        times = [at for at, _ in self.taken] + [math.inf]
        for index, (_, tokens) in enumerate(self.taken):
            before, after = times[max(index - 1, 0)], times[index + 1]
            for shard, token in enumerate(tokens):
                if token is not None:
                    since, _ = held.get((shard, token), (before, after))
                    held[(shard, token)] = (since, after)
        for shard, consumer, read_at in self.reads:
            since, until = held.get((shard, consumer), (math.inf, math.inf))
            assert since - CLOCK_SLACK <= read_at <= until + CLOCK_SLACK, (
                f"shard {shard}: {consumer!r} read at {read_at:.3f}, "
                f"holding its lock only within {since:.3f}-{until:.3f}"
            )


async def sample(iso: Container, samples: Samples, stop: asyncio.Event) -> None:
    keys = [lock_key(shard) for shard in range(SHARDS)]
    while not stop.is_set():
        before = time.monotonic()
        pipe = iso.redis.pipeline(transaction=False)
        pipe.mget(keys)
        for shard in range(SHARDS):
            pipe.xinfo_consumers(stream_name(shard), GROUP)
        tokens, *consumers = await pipe.execute(raise_on_error=False)
        at = (before + time.monotonic()) / 2
        samples.taken.append((at, tokens))
        for shard, found in enumerate(consumers):
            if isinstance(found, list):  # an error before the first worker made the group
                samples.reads.update(
                    (shard, c["name"], round(at - c["idle"] / 1000, 2))
                    for c in found
                    if c["idle"] < RECENT_MS
                )
        await asyncio.sleep(SAMPLE_SECONDS)


async def append(iso: Container, appended: set[tuple[int, str]], stop: asyncio.Event) -> None:
    items = realistic_events(10**6, seed=5, profiles=400)
    while not stop.is_set():
        chunk = [next(items) for _ in range(APPEND_CHUNK)]
        ids = await append_all(iso.redis, SHARDS, chunk)
        appended.update((shard_for(key, SHARDS), i) for (key, _), i in zip(chunk, ids, strict=True))
        await asyncio.sleep(APPEND_EVERY_SECONDS)


async def settled(samples: Samples, live: list[subprocess.Popen[bytes]], since: float) -> float:
    """Seconds from ``since`` until every shard has a live holder, none over its share."""
    pids = {worker.pid for worker in live}
    share = math.ceil(SHARDS / len(live))
    deadline = since + TTL_SECONDS + MARGIN_SECONDS
    while True:
        at, tokens = samples.taken[-1]
        holders = samples.holders(tokens)
        if None not in tokens and set(holders) <= pids and max(holders.values()) <= share:
            return at - since
        assert time.monotonic() < deadline, (
            f"{len(live)} workers: not settled in time: {holders} (live {sorted(pids)})"
        )
        await asyncio.sleep(SAMPLE_SECONDS)


async def joined(iso: Container, worker: subprocess.Popen[bytes]) -> float:
    """When ``worker``'s first heartbeat is seen (it started balancing)."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        members = await iso.redis.zrange(WORKERS_KEY, 0, -1)
        if any(pid_of(member) == worker.pid for member in members):
            return time.monotonic()
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker sent no heartbeat"
        await asyncio.sleep(SAMPLE_SECONDS)


async def archived(iso: Container) -> set[tuple[int, str]]:
    async with iso.engine.connect() as conn:
        rows = (await conn.execute(sa.select(events.c.shard, events.c.stream_id))).all()
    assert len(rows) == len({(shard, stream_id) for shard, stream_id in rows})  # none twice
    return {(shard, stream_id) for shard, stream_id in rows}


async def wait_gone(worker: subprocess.Popen[bytes]) -> None:
    """Wait for ``worker`` to exit, and for its children (RQ's scheduler) with it."""
    children = psutil.Process(worker.pid).children(recursive=True)
    await asyncio.to_thread(worker.wait, 15)
    await asyncio.to_thread(psutil.wait_procs, children, 5)


@pytest.mark.slow
async def test_shards_rebalance_as_workers_come_and_go(stack: Stack, iso: Container) -> None:
    samples = Samples()
    appended: set[tuple[int, str]] = set()
    stop = asyncio.Event()
    background = [
        asyncio.create_task(sample(iso, samples, stop)),
        asyncio.create_task(append(iso, appended, stop)),
    ]
    started: list[subprocess.Popen[bytes]] = []
    took: dict[str, float] = {}
    try:
        for count in (1, 2, 3):
            started.append(start_worker(stack))
            since = await joined(iso, started[-1])
            took[f"{count} workers"] = await settled(samples, started, since)

        stable_until = time.monotonic() + STABLE_SECONDS
        while time.monotonic() < stable_until:  # three workers on eight shards: 3, 3, 2
            _, tokens = samples.taken[-1]
            assert None not in tokens
            assert max(samples.holders(tokens).values()) <= 3
            await asyncio.sleep(SAMPLE_SECONDS)

        stopped, killed, last = started
        since = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        await wait_gone(stopped)
        samples.gone[stopped.pid] = time.monotonic()  # it released its shards before exiting
        took["one stopped"] = await settled(samples, [killed, last], since)

        since = time.monotonic()
        await asyncio.to_thread(kill_9, killed)
        samples.gone[killed.pid] = since + TTL_SECONDS + SAMPLE_SECONDS * 5
        took["one killed"] = await settled(samples, [last], since)

        stop.set()
        await asyncio.gather(*background)
        deadline = time.monotonic() + 30
        while (done := await archived(iso)) != appended:
            assert done <= appended, "archived events nobody appended"
            assert time.monotonic() < deadline, f"{len(appended - done)} events not archived"
            await asyncio.sleep(0.1)
        lag = await projection_lag(iso.redis, iso.engine, SHARDS)
        behind = {(name, shard): at.behind for name, by in lag.items() for shard, at in by.items()}
        assert set(behind.values()) == {0}
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        for worker in started:
            kill_9(worker)

    samples.check_one_holder_at_a_time()
    samples.check_reads_under_the_lock()
    print(f"settled after (s): {took}; {len(appended)} events")
