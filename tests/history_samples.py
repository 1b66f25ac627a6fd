"""Archive rows for the event-history tests: real events, encoded as the log encodes them.

These tests write archive rows directly, so they run on a database of their own
(``archive_of_its_own``): rows in the shared test database would make every other test's
``replay --verify`` (live projections vs. the archive) see events no projector applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.container import Container
from adapters.keyring import Keyring
from adapters.settings import Settings
from adapters.tables import events
from api.app import create_app
from domain.codec import encode
from domain.events import (
    AnyEvent,
    DayShare,
    ProgressDeleted,
    ProgressSaved,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
)
from medio.migrate import upgrade
from projections.archive_pages import read_page
from services.container import build_container
from tests import scratch

T0 = datetime(2025, 7, 28, 8, 0, 0, 123456, tzinfo=UTC)  # a Monday


def session_events(session_id: int, profile_id: int, start: datetime) -> list[AnyEvent]:
    """One watch session: start, two heartbeats of 60 s, end."""
    actor = f"user_{profile_id}"
    day = start.date().isoformat()
    common = {"session_id": session_id, "profile_id": profile_id, "video_id": 7}
    beat2 = start + timedelta(seconds=120)
    return [
        SessionStarted(
            occurred_at=start,
            actor=actor,
            user_id=profile_id,
            timezone="UTC",
            local_date=day,
            **common,
        ),
        *[
            SessionHeartbeat(
                occurred_at=start + timedelta(seconds=watched),
                actor=actor,
                shares=(DayShare(day, 60.0),),
                position=watched,
                watched_seconds=watched,
                **common,
            )
            for watched in (60.0, 120.0)
        ],
        SessionEnded(
            occurred_at=beat2 + timedelta(seconds=5),
            actor=actor,
            reason="ended",
            ended_at=beat2 + timedelta(seconds=5),
            started_at=start,
            shares=(DayShare(day, 5.0),),
            watched_seconds=125.0,
            position=125.0,
            **common,
        ),
    ]


def progress_events(clerk_id: str, at: datetime) -> list[AnyEvent]:
    """A save and a delete of one title's resume position."""
    return [
        ProgressSaved(
            occurred_at=at, actor=clerk_id, clerk_id=clerk_id, tmdb_id="603", current_time=42.5
        ),
        ProgressDeleted(
            occurred_at=at + timedelta(seconds=1), actor=clerk_id, clerk_id=clerk_id, tmdb_id="603"
        ),
    ]


def mixed_events(count: int, start: datetime = T0) -> list[AnyEvent]:
    """``count`` events of every type, one minute apart per session, over a few profiles."""
    produced: list[AnyEvent] = []
    index = 0
    while len(produced) < count:
        at = start + timedelta(minutes=10 * index)
        if index % 3 == 2:
            produced.extend(progress_events(f"user_p{index % 5}", at))
        else:
            produced.extend(session_events(1000 + index, 1 + index % 4, at))
        index += 1
    return produced[:count]


def archive_row(position: int, event: AnyEvent, shard: int = 0) -> dict[str, Any]:
    """The archive row the archive writer stores for ``event`` at ``position``."""
    name, version, data = encode(event)
    return {
        "position": position,
        "shard": shard,
        "stream_id": f"{1753689600000 + position}-0",
        "type": name,
        "version": version,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "data": data.decode(),
        "key_id": None,  # in the clear, as rows archived before privacy keys existed
    }


def progress_saved_v1_row(position: int, at: datetime) -> dict[str, Any]:
    """A ``progress.saved`` as the Express era wrote it (v1: no duration, no finished)."""
    body = {
        "type": "progress.saved",
        "occurred_at": at,
        "actor": "user_old",
        "clerk_id": "user_old",
        "tmdb_id": "550",
        "current_time": 12.0,
    }
    return {
        "position": position,
        "shard": 0,
        "stream_id": f"{1753689600000 + position}-0",
        "type": "progress.saved",
        "version": 1,
        "occurred_at": at,
        "actor": "user_old",
        "data": msgspec.json.encode(body).decode(),
    }


async def insert_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(events.insert(), list(rows))


async def archive(engine: AsyncEngine, sample: Sequence[AnyEvent], first: int = 1) -> list[int]:
    """Store ``sample`` at consecutive positions from ``first``; returns the positions."""
    rows = [archive_row(first + i, event) for i, event in enumerate(sample)]
    async with engine.begin() as conn:
        await insert_rows(conn, rows)
    return [row["position"] for row in rows]


async def clear_archive(engine: AsyncEngine) -> None:
    """Tests of the history own the whole archive while they run."""
    async with engine.begin() as conn:
        await conn.execute(sa.delete(events))


async def archive_contents(engine: AsyncEngine, keyring: Keyring) -> list[tuple[Any, ...]]:
    """Every archived event as readers see it (opened: sealed bodies in the clear)."""
    async with engine.connect() as conn:
        page = await read_page(conn, keyring, 0, 1_000_000)
    return [dataclasses.astuple(event) for event in page]


@contextlib.contextmanager
def archive_of_its_own(settings: Settings) -> Iterator[Settings]:
    """``settings`` on a fresh, migrated database (same Redis), dropped afterwards."""
    with scratch.throwaway_database("test_history") as url:
        own = msgspec.structs.replace(settings, database_url=url)
        upgrade(own)
        yield own


# Fixtures for modules that write archive rows directly: import them into the module
# (``from history_samples import app, container, empty_archive, history_settings``) and its
# tests run on a database of their own, with an empty archive around each test.


@pytest.fixture(scope="module")
def history_settings(settings: Settings) -> Iterator[Settings]:
    """This module's own database: its archive rows never meet other tests' projections."""
    with archive_of_its_own(settings) as own:
        yield own


@pytest.fixture
async def container(history_settings: Settings) -> AsyncIterator[Container]:
    built = build_container(history_settings)
    yield built
    await built.close()


@pytest.fixture
def app(history_settings: Settings) -> Litestar:
    return create_app(history_settings)


@pytest.fixture(autouse=True)
async def empty_archive(container: Container) -> AsyncIterator[None]:
    await clear_archive(container.engine)
    yield
    await clear_archive(container.engine)
