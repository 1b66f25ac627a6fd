"""Helpers for the resume projection tests (titles and series) on a real Redis.

``project`` runs one batch the way the runtime does: ``prepare``, then ``apply``'s commands in
one script; ``feeding`` binds it to one store and projection. ``projection_fixtures`` makes a
test module's ``clerk``, ``live`` and ``feed`` fixtures for one of the projections.
``envelopes`` gives each event a stream id from its time. ``fresh_clerk`` hands out a new user
and, afterwards, removes what the test wrote for it directly (without events), so the live
projection still equals a rebuild from the archive for later tests. The ``assert_*`` helpers
and ``dump_alike_in_any_batching`` hold the checks both projections pass alike;
``legacy_save`` writes a key the way the services before Medio did, for the import tests.
``title_saved``, ``title_deleted``, ``series_saved`` and ``series_deleted`` build the events the
projections read, the user acting on their own progress.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline
from adapters.container import Container
from domain.codec import encode
from domain.events import (
    AnyEvent,
    ProgressDeleted,
    ProgressSaved,
    SeriesProgressDeleted,
    SeriesProgressSaved,
)
from domain.progress import epoch_ms
from domain.timestamps import iso_ms
from projections.base import Envelope, RedisProjection
from projections.redis_batch import apply_redis

DAY = timedelta(days=1)
LEGACY_TTL = 2_592_000  # 30 days: what the services before Medio passed to SET ... EX
SECOND = timedelta(seconds=1)

P = TypeVar("P", bound=RedisProjection)
Feed = Callable[..., Awaitable[None]]  # ``await feed(*events)``: one batch, projected


def recent() -> datetime:
    """An hour ago, on a whole millisecond (as stored timestamps are)."""
    return datetime.now(UTC).replace(microsecond=123_000) - timedelta(hours=1)


def title_saved(
    clerk: str,
    tmdb: str,
    at: datetime,
    current_time: float = 100,
    duration: float | None = None,
    finished: bool = False,
) -> ProgressSaved:
    return ProgressSaved(
        occurred_at=at,
        actor=clerk,
        clerk_id=clerk,
        tmdb_id=tmdb,
        current_time=current_time,
        duration=duration,
        finished=finished,
    )


def title_deleted(clerk: str, tmdb: str, at: datetime) -> ProgressDeleted:
    return ProgressDeleted(occurred_at=at, actor=clerk, clerk_id=clerk, tmdb_id=tmdb)


def series_saved(
    clerk: str,
    series: str,
    episode: str,
    at: datetime,
    current_time: float = 100,
    duration: float | None = None,
    finished: bool = False,
) -> SeriesProgressSaved:
    return SeriesProgressSaved(
        occurred_at=at,
        actor=clerk,
        clerk_id=clerk,
        series_id=series,
        tmdb_id=episode,
        current_time=current_time,
        duration=duration,
        finished=finished,
    )


def series_deleted(clerk: str, series: str, at: datetime) -> SeriesProgressDeleted:
    return SeriesProgressDeleted(occurred_at=at, actor=clerk, clerk_id=clerk, series_id=series)


_sequence = iter(range(1, 10**9))


def envelopes(events: Sequence[AnyEvent]) -> list[Envelope]:
    batch = []
    for event in events:
        name, version, data = encode(event)
        stream_id = f"{epoch_ms(event.occurred_at)}-{next(_sequence)}"
        batch.append(Envelope(0, stream_id, name, version, data, event))
    return batch


async def project(redis: Redis, projection: RedisProjection, *events: AnyEvent) -> None:
    """One batch: ``prepare``, then ``apply``'s commands in one script, as the runtime runs it."""
    await apply_redis(redis, projection, envelopes(events))


def feeding(redis: Redis, projection: RedisProjection) -> Feed:
    """``project`` into ``projection`` on ``redis``: the events passed, as one batch."""

    async def feed(*events: AnyEvent) -> None:
        await project(redis, projection, *events)

    return feed


def projection_fixtures(make: Callable[[], P], users_key: str) -> tuple[Any, Any, Any]:
    """The fixtures of a module testing the projection ``make`` builds: ``clerk`` (a fresh user,
    see ``fresh_clerk``), ``live`` (the live projection) and ``feed`` (one batch into ``live``).
    Assign them to those three names in the module."""

    @pytest.fixture(name="clerk")
    async def clerk(container: Container) -> AsyncIterator[str]:
        async with fresh_clerk(container.redis, users_key) as clerk_id:
            yield clerk_id

    @pytest.fixture(name="live")
    def live() -> P:
        return make()

    @pytest.fixture(name="feed")
    def feed(container: Container, live: P) -> Feed:
        return feeding(container.redis, live)

    return clerk, live, feed


async def legacy_save(
    redis: Redis, key: str, value: dict[str, Any], age: timedelta
) -> tuple[str, bytes]:
    """``SET key <json> EX <30 days - age>`` as the services before Medio did ``age`` ago:
    ``value`` with its ``updatedAt``, in compact JSON. Returns the key and the stored bytes."""
    stored = json.dumps(
        {**value, "updatedAt": iso_ms(datetime.now(UTC) - age)}, separators=(",", ":")
    )
    await redis.set(key, stored, ex=LEGACY_TTL - int(age.total_seconds()))
    return key, stored.encode()


@asynccontextmanager
async def fresh_clerk(redis: Redis, users_key: str) -> AsyncIterator[str]:
    """A new user id; its keys, and its entries in the projection's ``users_key``, are
    removed afterwards."""
    clerk_id = f"user_{secrets.token_hex(5)}"
    yield clerk_id
    keys = [key async for key in redis.scan_iter(match=f"*{clerk_id}*")]
    if keys:
        await redis.delete(*keys)
    users = await redis.zrange(users_key, 0, -1)
    mine = [u for u in users if clerk_id.encode() in u]
    if mine:
        await redis.zrem(users_key, *mine)


def own_prefix(projection: P) -> P:
    """``projection`` under a prefix of its own, so dump and clear see only this test's state."""
    projection.prefix = f"test:{secrets.token_hex(4)}:"
    return projection


class CommandRecorder:
    """Stands in for the container's pipeline and notes the name of each command it runs."""

    def __init__(self, pipeline: AutoPipeline) -> None:
        self.pipeline = pipeline
        self.calls: list[str] = []

    async def execute(self, *args: Any) -> Any:
        self.calls.append(args[0])
        return await self.pipeline.execute(*args)


async def dump_alike_in_any_batching(
    redis: Redis, one_batch: P, one_by_one: P, events: Sequence[AnyEvent]
) -> dict[str, Any]:
    """``events`` projected in one batch into ``one_batch`` and one by one into ``one_by_one``:
    both dumps must be the same; returns it."""
    await project(redis, one_batch, *events)
    for event in events:
        await project(redis, one_by_one, event)
    dumped = await one_batch.dump(redis)
    assert dumped == await one_by_one.dump(redis)
    return dumped


async def assert_clear_removes_every_key(
    redis: Redis, projection: RedisProjection, *events: AnyEvent
) -> None:
    """After ``events``, ``clear`` leaves nothing under the projection's prefix."""
    await project(redis, projection, *events)
    assert await projection.dump(redis) != {}
    await projection.clear(redis)
    assert await projection.dump(redis) == {}
    leftover = [k async for k in redis.scan_iter(match=f"{projection.prefix}*")]
    assert leftover == []


async def assert_scratch_copy_leaves_live_keys(
    redis: Redis, scratch: RedisProjection, event: AnyEvent, written: str
) -> None:
    """``event`` projected into a scratch copy writes ``written`` under the scratch prefix only."""
    await project(redis, scratch, event)
    assert await redis.exists(written) == 0
    assert await redis.exists(scratch.key(written)) == 1
    await scratch.clear(redis)
