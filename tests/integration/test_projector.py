"""The projector: every appended event reaches the archive and the projections exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from domain.events import ProgressSaved
from medio.bootstrap import Container
from medio.tables import events


def _saved(clerk_id: str, tmdb_id: str, seconds: float) -> ProgressSaved:
    return ProgressSaved(
        occurred_at=datetime.now(UTC),
        actor=clerk_id,
        clerk_id=clerk_id,
        tmdb_id=tmdb_id,
        current_time=seconds,
    )


async def test_drained_events_are_archived_in_append_order(
    container: Container, drain: Callable[[], Awaitable[int]]
) -> None:
    clerk_id = f"user_{secrets.token_hex(4)}"
    ids = [await container.events.append(clerk_id, _saved(clerk_id, "42", s)) for s in range(5)]
    assert await drain() >= 5
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(events.c.stream_id, events.c.actor)
            .where(events.c.stream_id.in_(ids))
            .order_by(events.c.position)
        )
        assert [r.stream_id for r in rows] == ids
    assert await drain() == 0
