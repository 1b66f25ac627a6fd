"""Idempotency records stored with their effect: racing twins act once, on every store.

These call the commands directly, without the HTTP layer's running marker, so the only thing
that keeps twins apart is the record written atomically with the effect (a compare-and-append
in Redis, a primary key in SQL).
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from session_samples import NOW, new_owner, new_profile, new_video, session_events

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from adapters.tables import idempotency_records, profiles
from domain.catalog import Profile
from domain.progress import SaveProgress
from services import catalog, sessions
from services.container import build_container
from services.idempotency import (
    AlreadyAnswered,
    KeyReused,
    Receipt,
    key_ref,
    prune_expired,
    scope_digest,
    sql_answer,
)
from services.progress import save_progress
from workers.periodic import PERIODIC_JOBS

TWINS = 6


def _receipt(render: Any) -> Receipt[Any]:
    return Receipt(key_ref("sub:test", secrets.token_hex(8)), "f" * 64, render)


async def _race(twins: list[Awaitable[Any]]) -> tuple[list[Any], list[AlreadyAnswered]]:
    """The twins' results: those that acted, and those told a twin had answered."""
    outcomes = await asyncio.gather(*twins, return_exceptions=True)
    answered = [o for o in outcomes if isinstance(o, AlreadyAnswered)]
    acted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(acted) + len(answered) == len(outcomes), outcomes
    return acted, answered


def _profile_answer(profile: Profile) -> tuple[int, bytes]:
    return 201, f'{{"id":{profile.id}}}'.encode()


async def _racing_profile_creates(container: Container) -> None:
    user = await new_owner(container)
    receipt = _receipt(_profile_answer)
    values = {"name": "Twin", "age": 5, "timezone": "UTC", "daily_limit_minutes": 60}
    acted, answered = await _race(
        [
            catalog.create_profile(container.engine, user, dict(values), NOW, receipt)
            for _ in range(TWINS)
        ]
    )
    assert len(acted) == 1
    assert {a.answer.body for a in answered} == {f'{{"id":{acted[0].id}}}'}
    async with container.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(profiles).where(profiles.c.user_id == user)
        )
    assert count == 1


async def test_racing_profile_creates_insert_one_row_on_postgres(container: Container) -> None:
    await _racing_profile_creates(container)


async def test_racing_profile_creates_insert_one_row_on_sqlite(on_sqlite: Container) -> None:
    await _racing_profile_creates(on_sqlite)


async def test_racing_session_starts_append_one_event(container: Container) -> None:
    user = await new_owner(container)
    profile = await new_profile(container, user)
    video = await new_video(container, user)
    receipt = _receipt(lambda started: (201, str(started.state.session_id).encode()))
    acted, answered = await _race(
        [
            sessions.start_session(
                container, profile, video, public=False, actor="test", receipt=receipt
            )
            for _ in range(TWINS)
        ]
    )
    assert len(acted) == 1
    session_id = acted[0].state.session_id
    assert {a.answer.body for a in answered} == {str(session_id)}
    started = []
    for _id, fields in await container.redis.xrange(stream_name(0)):
        if (
            fields[b"t"] == b"session.started"
            and f'"profile_id":{profile.id},'.encode() in (fields[b"d"])
        ):
            started.append(_id)
    assert len(started) == 1
    assert len(await session_events(container.redis, session_id)) == 1


async def test_racing_progress_saves_append_one_event(container: Container) -> None:
    clerk_id = f"user_{secrets.token_hex(6)}"
    save = SaveProgress(clerk_id=clerk_id, tmdb_id="42", current_time=12.0, duration=None)
    receipt = _receipt(lambda _: (204, b""))
    acted, answered = await _race(
        [save_progress(container, clerk_id, save, receipt) for _ in range(TWINS)]
    )
    assert (len(acted), len(answered)) == (1, TWINS - 1)
    saved = [
        fields
        for _id, fields in await container.redis.xrange(stream_name(0))
        if fields[b"t"] == b"progress.saved" and clerk_id.encode() in fields[b"d"]
    ]
    assert len(saved) == 1


async def test_records_past_24_hours_are_pruned_and_never_answer(container: Container) -> None:
    user = await new_owner(container)
    receipt = _receipt(_profile_answer)
    values = {"name": "Old", "age": 5, "timezone": "UTC", "daily_limit_minutes": 60}
    await catalog.create_profile(container.engine, user, values, NOW, receipt)
    day_later = NOW + timedelta(hours=24)
    assert await sql_answer(container.engine, receipt.ref, day_later - timedelta(seconds=1))
    assert await sql_answer(container.engine, receipt.ref, day_later) is None
    assert await prune_expired(container.engine, day_later) >= 1
    async with container.engine.connect() as conn:
        left = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(idempotency_records)
            .where(idempotency_records.c.digest == receipt.ref.digest)
        )
    assert left == 0


def test_the_periodic_job_prunes_expired_records(settings: Settings) -> None:
    """The job listed in ``PERIODIC_JOBS`` resolves and deletes records whose day is over."""
    job = next(j for j in PERIODIC_JOBS if j.name == "prune-idempotency")
    module, _, name = job.function.rpartition(".")
    run = getattr(importlib.import_module(module), name)
    digest = scope_digest("sub:test", secrets.token_hex(8))

    async def insert_expired() -> None:
        container = build_container(settings)
        async with container.engine.begin() as conn:
            await conn.execute(
                idempotency_records.insert().values(
                    digest=digest, fingerprint="f", status=201, body="{}", expires_at=NOW
                )
            )
        await container.close()

    async def left() -> int:
        container = build_container(settings)
        async with container.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(idempotency_records)
                .where(idempotency_records.c.digest == digest)
            )
        await container.close()
        return int(found or 0)

    asyncio.run(insert_expired())
    assert run() >= 1
    assert asyncio.run(left()) == 0


async def test_a_twin_with_another_request_under_the_key_is_told_so(container: Container) -> None:
    """A racing request with another fingerprint gets ``KeyReused`` (422), not the answer."""
    user = await new_owner(container)
    profile = await new_profile(container, user)
    video = await new_video(container, user)
    first = _receipt(lambda started: (201, b"{}"))
    other = Receipt(first.ref, "0" * 64, first.render)
    await sessions.start_session(
        container, profile, video, public=False, actor="test", receipt=first
    )
    with pytest.raises(KeyReused):
        await sessions.start_session(
            container, profile, video, public=False, actor="test", receipt=other
        )
    values = {"name": "Twin", "age": 5, "timezone": "UTC", "daily_limit_minutes": 60}
    row_receipt = _receipt(_profile_answer)
    await catalog.create_profile(container.engine, user, dict(values), NOW, row_receipt)
    with pytest.raises(KeyReused):
        await catalog.create_profile(
            container.engine,
            user,
            dict(values),
            NOW,
            Receipt(row_receipt.ref, "0" * 64, _profile_answer),
        )
