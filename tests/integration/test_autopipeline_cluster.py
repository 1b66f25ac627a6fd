"""The shared pipeline on a private 3-master Redis Cluster: a batch goes to each master in one
write, each caller gets its own reply, a moved slot is followed, and a master that is stopped or
silent fails only its own callers."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.autopipeline import AutoPipeline
from adapters.cluster import cluster_client, raw_replies, slot_of
from tests import cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def running() -> Iterator[cluster.Cluster]:
    with cluster.running_cluster(appendonly=False) as started:
        yield started


@pytest.fixture
async def pipeline(running: cluster.Cluster) -> AsyncIterator[AutoPipeline]:
    """A pipeline on the cluster as Medio builds it: no socket timeout, raw replies, the
    deadline per round trip."""
    client = raw_replies(cluster_client(running.url, socket_timeout=None))
    await client.initialize()  # type: ignore[attr-defined]
    yield AutoPipeline(client, timeout=1.5)
    await client.aclose()


def _master(pipeline: AutoPipeline, key: str) -> ClusterNode:
    node: ClusterNode = pipeline.redis.nodes_manager.get_node_from_slot(slot_of(key))  # type: ignore[attr-defined]
    return node


def _key_per_master(pipeline: AutoPipeline, prefix: str) -> dict[int, str]:
    """A key on each master (by port), named ``prefix`` and a number."""
    keys: dict[int, str] = {}
    number = 0
    while len(keys) < cluster.MASTERS:
        key = f"{prefix}:{number}"
        keys.setdefault(int(_master(pipeline, key).port), key)
        number += 1
    return keys


def _count_writes(monkeypatch: pytest.MonkeyPatch, pipeline: AutoPipeline) -> Counter[str]:
    """Connections taken per master name, and commands the cluster client routed itself
    (under ``"routed"``)."""
    counts: Counter[str] = Counter()
    acquire = ClusterNode.acquire_connection

    def counted_acquire(node: ClusterNode) -> Any:
        counts[node.name] += 1
        return acquire(node)

    routed = pipeline.redis.execute_command

    async def counted_execute(*args: Any, **kwargs: Any) -> Any:
        counts["routed"] += 1
        return await routed(*args, **kwargs)

    monkeypatch.setattr(ClusterNode, "acquire_connection", counted_acquire)
    monkeypatch.setattr(pipeline.redis, "execute_command", counted_execute)
    return counts


async def test_a_batch_goes_to_each_master_in_one_write_and_each_caller_gets_its_reply(
    pipeline: AutoPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = list(_key_per_master(pipeline, "batch").values())
    await pipeline.redis.set(keys[0], "not a number")
    counts = _count_writes(monkeypatch, pipeline)
    replies = await asyncio.gather(
        *(pipeline.execute("RPUSH", f"{{{key}}}:list", n) for n in range(10) for key in keys),
        pipeline.execute("SET", keys[1], "b"),
        pipeline.execute("SET", keys[2], "c"),
        pipeline.execute("INCR", keys[0]),
        pipeline.execute("MGET", keys[1], keys[2], "batch:none"),  # three slots: cut per key
        return_exceptions=True,
    )
    assert counts == Counter({master.name: 1 for master in map(_master, [pipeline] * 3, keys)})
    assert replies[:30] == [n for n in range(1, 11) for _ in keys]  # each list, in order
    assert replies[30:32] == [b"OK", b"OK"]
    assert isinstance(replies[32], ResponseError)  # only the caller of the bad INCR
    assert replies[33] == [b"b", b"c", None]
    for key in keys:
        listed = await pipeline.redis.lrange(f"{{{key}}}:list", 0, -1)
        assert listed == [str(n).encode() for n in range(10)]


async def test_a_moved_slot_is_followed_and_learned(
    pipeline: AutoPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot moved to another master behind the client's back: its command is redirected
    (``MOVED``), routed by the cluster client, which patches its slot map; the other masters'
    callers in the batch are answered from the same batch."""
    keys = _key_per_master(pipeline, "moved")
    source_port, moved = next(iter(keys.items()))
    target_port = next(port for port in keys if port != source_port)
    await pipeline.execute("SET", moved, "before")
    _move_slot(slot_of(moved), source_port, target_port, [*keys])
    counts = _count_writes(monkeypatch, pipeline)
    replies = await asyncio.gather(*(pipeline.execute("GET", key) for key in keys.values()))
    assert replies == [b"before", None, None]
    assert counts["routed"] == 1  # the moved key alone
    assert int(_master(pipeline, moved).port) == target_port  # learned from the redirect
    assert await pipeline.execute("SET", moved, "after") == b"OK"
    assert counts["routed"] == 1  # sent straight to its new master
    assert redis.Redis(port=target_port).get(moved) == b"after"


async def test_a_key_of_a_slot_being_migrated_is_asked_of_its_new_master(
    pipeline: AutoPipeline,
) -> None:
    """Mid-migration (``ASK``): a key already moved is read from the importing master."""
    keys = _key_per_master(pipeline, "asking")
    source_port, key = next(iter(keys.items()))
    target_port = next(port for port in keys if port != source_port)
    await pipeline.execute("SET", key, "moving")
    slot = slot_of(key)
    source, target = redis.Redis(port=source_port), redis.Redis(port=target_port)
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.cluster("MYID"))
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.cluster("MYID"))
    source.migrate("127.0.0.1", target_port, [key], 0, 5000)
    try:
        assert await pipeline.execute("GET", key) == b"moving"
        assert int(_master(pipeline, key).port) == source_port  # an ASK moves no slot
    finally:
        _move_slot(slot, source_port, target_port, [*keys])


async def test_a_silent_master_fails_only_its_callers_at_the_deadline(
    pipeline: AutoPipeline, running: cluster.Cluster
) -> None:
    keys = _key_per_master(pipeline, "silent")
    silent_port = next(iter(keys))
    await asyncio.gather(*(pipeline.execute("SET", key, "v") for key in keys.values()))
    loop = asyncio.get_running_loop()
    started = loop.time()
    answered: dict[str, float] = {}

    async def get(key: str) -> Any:
        try:
            return await pipeline.execute("GET", key)
        finally:
            answered[key] = loop.time() - started

    process = running.processes[silent_port]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        replies = await asyncio.gather(*(get(key) for key in keys.values()), return_exceptions=True)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    for (port, key), reply in zip(keys.items(), replies, strict=True):
        if port == silent_port:
            assert isinstance(reply, RedisTimeoutError)
            assert 1.4 < answered[key] < 3
        else:
            assert reply == b"v"
            assert answered[key] < 1  # not held up by the silent master


async def test_a_stopped_master_fails_only_its_own_callers() -> None:
    with cluster.running_cluster(appendonly=False) as running:
        client = raw_replies(cluster_client(running.url, socket_timeout=None))
        await client.initialize()  # type: ignore[attr-defined]
        pipeline = AutoPipeline(client, timeout=5)
        keys = _key_per_master(pipeline, "stopped")
        await asyncio.gather(*(pipeline.execute("SET", key, "v") for key in keys.values()))
        stopped_port = next(iter(keys))
        running.stop_node(stopped_port, kill=True)
        replies = await asyncio.gather(
            *(pipeline.execute("GET", key) for key in keys.values()), return_exceptions=True
        )
        await client.aclose()
    for port, reply in zip(keys, replies, strict=True):
        if port == stopped_port:
            assert isinstance(reply, RedisError), reply
        else:
            assert reply == b"v"


async def test_cancelling_a_batch_reaches_every_caller(
    pipeline: AutoPipeline, running: cluster.Cluster
) -> None:
    keys = _key_per_master(pipeline, "cancel")
    silent_port = next(iter(keys))
    process = running.processes[silent_port]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        callers = [asyncio.ensure_future(pipeline.execute("GET", key)) for key in keys.values()]
        await asyncio.sleep(0.05)  # the batch is out; the silent master's reply is awaited
        for task in list(pipeline._tasks):
            task.cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    silent_key = keys[silent_port]
    for key, result in zip(keys.values(), results, strict=True):
        if key == silent_key:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result is None  # answered before the cancel


def _move_slot(slot: int, source_port: int, target_port: int, ports: list[int]) -> None:
    """Move ``slot`` and its keys from one master to another, as ``redis-cli --cluster
    reshard`` does, and tell every master."""
    source, target = redis.Redis(port=source_port), redis.Redis(port=target_port)
    target_id = target.cluster("MYID")
    target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.cluster("MYID"))
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
    if keys:
        source.migrate("127.0.0.1", target_port, keys, 0, 5000)
    for port in ports:
        redis.Redis(port=port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
