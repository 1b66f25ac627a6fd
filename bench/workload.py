"""A realistic event mix for benchmarks and fault tests: players saving progress and watching.

Per profile, sessions run start -> heartbeats every 30 s -> end; per user, progress saves of a
few titles. Everything is interleaved the way many devices would append it, timestamps are
recent (resume keys expire 30 days after their event) and the sequence is reproducible from
``seed``. Each item is ``(ordering key, event)``: the profile id for session events, the
user id for progress, as the API appends them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from adapters.eventlog import entry_fields, shard_for, stream_name
from domain.events import (
    AnyEvent,
    DayShare,
    ProgressSaved,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
)

BEAT_SECONDS = 30.0


@dataclass
class _Viewer:
    """One child profile (and its parent user) part-way through a session."""

    profile_id: int
    user_id: int
    clerk_id: str
    session_id: int = 0
    video_id: int = 0
    beats_left: int = 0
    watched: float = 0.0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def session(self) -> dict[str, Any]:
        """The fields every event of the viewer's current session carries."""
        return {
            "actor": self.clerk_id,
            "session_id": self.session_id,
            "profile_id": self.profile_id,
            "video_id": self.video_id,
        }


def realistic_events(
    count: int,
    seed: int = 7,
    profiles: int = 200,
    actor_prefix: str = "user",
    start: datetime | None = None,
) -> Iterator[tuple[str, AnyEvent]]:
    """``count`` events: about 55 % heartbeats, 25 % progress saves, the rest starts and ends,
    about 10.5 ms apart from ``start`` (two hours ago by default)."""
    rng = random.Random(seed)
    clock = start or datetime.now(UTC) - timedelta(hours=2)
    viewers = [
        _Viewer(profile_id=seed * 100_000 + p, user_id=p // 2 + 1, clerk_id=f"{actor_prefix}_{p}")
        for p in range(profiles)
    ]
    next_session = seed * 10_000_000
    for _ in range(count):
        clock += timedelta(milliseconds=rng.randint(1, 20))
        viewer = rng.choice(viewers)
        day = clock.date().isoformat()
        if rng.random() < 0.25:
            yield (
                viewer.clerk_id,
                ProgressSaved(
                    occurred_at=clock,
                    actor=viewer.clerk_id,
                    clerk_id=viewer.clerk_id,
                    tmdb_id=str(rng.randint(1, 40)),
                    current_time=float(rng.randint(0, 7200)),
                    duration=7200.0,
                    finished=rng.random() < 0.05,
                ),
            )
        elif viewer.beats_left == 0 and viewer.session_id == 0:
            next_session += 1
            viewer.session_id, viewer.video_id = next_session, rng.randint(1, 500)
            viewer.beats_left, viewer.watched, viewer.started_at = rng.randint(2, 40), 0.0, clock
            yield (
                str(viewer.profile_id),
                SessionStarted(
                    occurred_at=clock,
                    **viewer.session(),
                    user_id=viewer.user_id,
                    timezone="UTC",
                    local_date=day,
                ),
            )
        elif viewer.beats_left > 0:
            viewer.beats_left -= 1
            viewer.watched += BEAT_SECONDS
            yield (
                str(viewer.profile_id),
                SessionHeartbeat(
                    occurred_at=clock,
                    **viewer.session(),
                    shares=(DayShare(day, BEAT_SECONDS),),
                    position=viewer.watched,
                    watched_seconds=viewer.watched,
                ),
            )
        else:
            yield (
                str(viewer.profile_id),
                SessionEnded(
                    occurred_at=clock,
                    **viewer.session(),
                    reason="ended",
                    ended_at=clock,
                    started_at=viewer.started_at,
                    watched_seconds=viewer.watched,
                    position=viewer.watched,
                ),
            )
            viewer.session_id = 0


async def append_all(
    redis: Redis, shards: int, items: Iterable[tuple[str, AnyEvent]], chunk: int = 2000
) -> list[str]:
    """Append ``items`` as the API would (``XADD`` to the key's shard), pipelined; their ids."""
    ids: list[str] = []
    batch = list(items)
    for start in range(0, len(batch), chunk):
        async with redis.pipeline(transaction=False) as pipe:
            for key, event in batch[start : start + chunk]:
                pipe.xadd(stream_name(shard_for(key, shards)), entry_fields(event))  # type: ignore[arg-type]
            ids.extend(i.decode() if isinstance(i, bytes) else i for i in await pipe.execute())
    return ids
