"""``MEDIO_RETENTION_DAYS``: the retention run shreds the personal data of events older than
the horizon (whole sessions, progress saves), and the parents' stats stay what they were, live
and after a replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from projector_env import Stack, isolated_stack, kill_9, start_worker

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import events
from bench.workload import append_all
from domain.events import (
    AnyEvent,
    BonusGranted,
    DayShare,
    DevicePaired,
    DeviceRevoked,
    DeviceTokenIssued,
    EndReason,
    PolicySet,
    ProfileLocked,
    ProfileUnlocked,
    ProgressSaved,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
    SessionStopRequested,
    TimeRequestDecided,
    TimeRequested,
)
from projections.archive_pages import read_page
from projections.devices import DevicesProjection
from projections.ledger import LedgerProjection
from projections.replay import rebuild, verify
from projections.runtime import project_pending
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection
from services.container import build_container
from services.retention import apply_retention

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)


def _session(
    session_id: int,
    at: datetime,
    end: bool = True,
    device_id: int | None = None,
    reason: EndReason = "ended",
) -> list[tuple[str, AnyEvent]]:
    common = {"session_id": session_id, "profile_id": 7, "video_id": 70 + session_id % 2}
    day = at.date().isoformat()
    events: list[AnyEvent] = [
        SessionStarted(
            occurred_at=at,
            actor="user_kept",
            user_id=1,
            timezone="UTC",
            local_date=day,
            device_id=device_id,
            **common,
        ),
        SessionHeartbeat(
            occurred_at=at + timedelta(seconds=60),
            actor="user_kept",
            shares=(DayShare(day, 60.0),),
            watched_seconds=60.0,
            **common,
        ),
    ]
    if end:
        events.append(
            SessionEnded(
                occurred_at=at + timedelta(seconds=90),
                actor="user_kept",
                reason=reason,
                started_at=at,
                ended_at=at + timedelta(seconds=90),
                local_date=day,
                shares=(DayShare(day, 30.0),),
                watched_seconds=90.0,
                **common,
            )
        )
    return [("7", e) for e in events]


def _save(title: str, at: datetime) -> tuple[str, AnyEvent]:
    event = ProgressSaved(
        occurred_at=at, actor="user_kept", clerk_id="user_kept", tmdb_id=title, current_time=5.0
    )
    return "user_kept", event


@pytest.fixture
def own_stack(settings: Settings) -> Iterator[Stack]:
    with isolated_stack(retention_days=40) as own:
        yield own


@pytest.fixture
def stack(own_stack: Stack) -> Settings:
    return own_stack.settings


@pytest.fixture
async def store(stack: Settings) -> AsyncIterator[Container]:
    container = build_container(stack)
    yield container
    await container.close()


async def _stats(container: Container) -> dict[str, Any]:
    async with container.engine.connect() as conn:
        return await StatsProjection().dump(conn)


async def test_old_events_are_shredded_and_stats_survive_a_replay(store: Container) -> None:
    history = [
        *_session(1, OLD),
        *_session(2, OLD + timedelta(hours=1)),
        _save("old-title", OLD),
        *_session(3, NOW - timedelta(hours=2)),
        _save("new-title", NOW - timedelta(hours=1)),
    ]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    before = await _stats(store)
    assert before["stats_totals"]

    shredded = await apply_retention(store)
    await project_pending(store)

    assert shredded == 7  # two old sessions of three events, one old save
    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 1000)
    erased = [e for e in page if e.erased]
    assert len(erased) == 7 and all(e.occurred_at < NOW - timedelta(days=40) for e in erased)
    assert "old-title" not in str(page) and "new-title" in str(page)
    assert {e.type for e in page} >= {"stats.carried", "privacy.retention_applied"}
    assert await _stats(store) == before
    async with store.engine.connect() as conn:
        rows = (await SessionsProjection().dump(conn))["watch_sessions"]
    assert [row[0] for row in rows] == [3]  # the old sessions' rows are gone too

    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _stats(store) == before
    assert await apply_retention(store) == 0  # nothing left to shred


async def test_a_session_running_at_the_horizon_waits_for_the_next_run(store: Container) -> None:
    history = _session(5, OLD, end=False)
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    assert await apply_retention(store) == 0
    assert (await verify(store)).differences == {}


def _old_day(at: datetime) -> list[tuple[str, AnyEvent]]:
    """A day of profile 7's parental policy, and a session of device 71 that the parent cut off."""
    day = at.date().isoformat()
    facts: list[AnyEvent] = [
        PolicySet(
            occurred_at=at,
            actor="user_kept",
            profile_id=7,
            user_id=1,
            local_date=day,
            timezone="UTC",
            daily_limit_minutes=30,
            weekday_limits={},
        ),
        BonusGranted(occurred_at=at, actor="user_kept", profile_id=7, local_date=day, minutes=10,
                     total_minutes=10),
        ProfileLocked(occurred_at=at, actor="user_kept", profile_id=7, local_date=day),
        ProfileUnlocked(occurred_at=at, actor="user_kept", profile_id=7, local_date=day),
        TimeRequested(occurred_at=at, actor="device:71", request_id=5, profile_id=7,
                      local_date=day, minutes=15, message="please"),
        TimeRequestDecided(occurred_at=at, actor="user_kept", request_id=5, profile_id=7,
                           local_date=day, status="approved", minutes=15),
    ]  # fmt: skip
    cut = _session(11, at + timedelta(minutes=5), device_id=71, reason="parent")
    stop = SessionStopRequested(
        occurred_at=at + timedelta(minutes=6),
        actor="user_kept",
        session_id=11,
        profile_id=7,
        video_id=71,
        local_date=day,
    )
    return [("7", e) for e in facts] + cut[:2] + [("7", stop)] + cut[2:]


def _device(
    device_id: int, at: datetime, revoked_at: datetime | None
) -> list[tuple[str, AnyEvent]]:
    events: list[AnyEvent] = [
        DevicePaired(occurred_at=at, actor="user_kept", device_id=device_id, pairing_id="p",
                     profile_id=7, user_id=1, name=f"TV {device_id}"),
        DeviceTokenIssued(occurred_at=at, actor="device", device_id=device_id, profile_id=7,
                          token_hash="ab" * 32),
    ]  # fmt: skip
    if revoked_at is not None:
        events.append(
            DeviceRevoked(
                occurred_at=revoked_at,
                actor="user_kept",
                device_id=device_id,
                profile_id=7,
                user_id=1,
            )
        )
    return [("7", e) for e in events]


async def _dump(container: Container) -> dict[str, Any]:
    async with container.engine.connect() as conn:
        return {
            "ledger": (await LedgerProjection().dump(conn))["day_ledger"],
            "devices": (await DevicesProjection().dump(conn))["devices"],
        }


async def test_the_ledger_and_devices_agree_with_a_replay_after_retention(
    store: Container,
) -> None:
    """Old days' ledger rows go with the events they came from; a device still paired keeps its
    record (its events are not viewing history); a device revoked before the horizon goes."""
    history = [
        *_device(71, OLD - timedelta(days=1), None),  # still paired: watches today too
        *_device(72, OLD - timedelta(days=1), OLD),  # revoked long ago
        *_old_day(OLD),
        *_session(3, NOW - timedelta(hours=2), device_id=71, reason="daily_limit"),
    ]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    before = await _stats(store)
    rows = await _dump(store)
    assert len(rows["ledger"]) == 9 and len(rows["devices"]) == 2

    assert await apply_retention(store) > 0
    await project_pending(store)

    after = await _dump(store)
    assert [row[5] for row in after["ledger"]] == [NOW - timedelta(hours=2) + timedelta(seconds=90)]
    assert [row[0] for row in after["devices"]] == [71]  # the revoked one is gone
    assert await _stats(store) == before
    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _dump(store) == after
    assert await _stats(store) == before
    async with store.engine.connect() as conn:
        today = await SessionsProjection().day_sessions(conn, 7, (NOW - timedelta(hours=2)).date())
    assert today[0]["device"] == {"device_id": 71, "name": "TV 71", "revoked_at": None}


async def test_the_scheduled_job_shreds_and_a_replay_gives_the_same_stats(
    own_stack: Stack, store: Container
) -> None:
    """Issue 19's "done when": a real ``medio worker`` runs the retention job on its schedule
    (the first run is due at once), and stats, a verify and a rebuild agree with before."""
    history = [*_session(1, OLD), *_old_day(OLD), *_session(3, NOW - timedelta(hours=2))]
    await append_all(store.redis, store.settings.stream_shards, history)
    await project_pending(store)
    before = await _stats(store)

    worker = start_worker(own_stack)
    try:
        deadline = time.monotonic() + 60
        while not await _retention_runs(store):
            assert worker.poll() is None, "the worker died"
            assert time.monotonic() < deadline, "no retention run within 60 s"
            await asyncio.sleep(0.5)
    finally:
        kill_9(worker)
    await project_pending(store)

    async with store.engine.connect() as conn:
        page = await read_page(conn, store.keyring, 0, 1000)
    assert all(e.erased for e in page if e.occurred_at < NOW - timedelta(days=40))
    assert await _stats(store) == before
    assert (await verify(store)).differences == {}
    await rebuild(store)
    assert await _stats(store) == before


async def _retention_runs(container: Container) -> int:
    async with container.engine.connect() as conn:
        found = await conn.execute(
            sa.select(sa.func.count()).where(events.c.type == "privacy.retention_applied")
        )
        return int(found.scalar_one())
