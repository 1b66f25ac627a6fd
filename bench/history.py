"""An event history of a chosen size for the read benchmarks, written as the projector writes it.

Two kinds of families:

* **readers**: parent users, each with one child profile and a catalog of ``VIDEOS`` videos,
  and a week of watching (``READER_EVENTS`` events each: five sessions on five days, some on
  the same video, and one day a request for more time, approved). Their catalog rows are
  inserted as the catalog writes them; the benchmark reads their stats and a day's ledger and
  pages through their events.
* **others**: the rest of the platform (``bench.workload``'s mix of progress saves and
  sessions over ``OTHER_PROFILES`` profiles), the history that grows: ``grow`` adds it until
  the archive holds the size asked for, timestamped in the hours before now.

Events go through the real SQL projections (archive, sessions, stats, devices), in batches of
``BATCH`` in one transaction each, archive last: the rows are the projector's, at far more than
its speed, because no stream is read or acknowledged. The Redis projections are not applied:
the reads measured on Redis read the benchmark users' own keys, which ``bench.reads`` seeds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.keyring import Keyring
from adapters.tables import events, profiles, users, videos
from bench.workload import realistic_events
from domain.codec import encode
from domain.events import (
    AnyEvent,
    BonusGranted,
    DayShare,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
    TimeRequestDecided,
    TimeRequested,
)
from projections import archive
from projections.base import Envelope, SqlProjection
from projections.registry import SQL_PROJECTIONS

VIDEOS = 8
SESSIONS = 5  # one a day on the last five days; two on the reader's first video
BEATS = 2  # heartbeats per session, 30 s each
LEDGER_DAY = 1  # days ago: the child asked for 15 more minutes that day and got them
REQUEST_EVENTS = 3  # asked, approved, bonus granted
READER_EVENTS = SESSIONS * (2 + BEATS) + REQUEST_EVENTS
OTHER_PROFILES = 20_000
BATCH = 5_000
BEAT_SECONDS = 30.0
SESSION_IDS = 10**12  # readers' session ids start here, far above the others'


@dataclass(frozen=True)
class Reader:
    """A family the benchmark reads as: its token's ``sub``, user row, profile and videos."""

    sub: str
    user_id: int
    profile_id: int
    video_ids: list[int]


async def add_readers(engine: AsyncEngine, subs: list[str]) -> list[Reader]:
    """Users, one profile each and ``VIDEOS`` videos each, inserted as the catalog writes them."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        user_ids = (
            await conn.execute(
                users.insert().returning(users.c.id),
                [{"external_id": sub, "created_at": now} for sub in subs],
            )
        ).scalars()
        ids = list(user_ids)
        profile_ids = (
            await conn.execute(
                profiles.insert().returning(profiles.c.id),
                [
                    {
                        "user_id": user_id,
                        "name": f"Kid {n}",
                        "age": 8,
                        "daily_limit_minutes": 120,
                        "timezone": "UTC",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, user_id in enumerate(ids)
                ],
            )
        ).scalars()
        video_ids = (
            await conn.execute(
                videos.insert().returning(videos.c.id),
                [
                    {
                        "user_id": user_id,
                        "title": f"Video {v} of family {n}",
                        "url": "https://example.com/v.mp4",
                        "duration": 600,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, user_id in enumerate(ids)
                    for v in range(VIDEOS)
                ],
            )
        ).scalars()
    all_videos = list(video_ids)
    return [
        Reader(sub, user_id, profile_id, all_videos[n * VIDEOS : (n + 1) * VIDEOS])
        for n, (sub, user_id, profile_id) in enumerate(zip(subs, ids, profile_ids, strict=True))
    ]


def ledger_date(now: datetime) -> str:
    """The local day (UTC) whose ledger the reads benchmark reads: a session and a request."""
    return (now - timedelta(days=LEDGER_DAY, hours=1)).date().isoformat()


def reader_history(reader: Reader, number: int, now: datetime) -> Iterator[AnyEvent]:
    """``READER_EVENTS`` events: a session a day on the last ``SESSIONS`` days (today too), and
    on ``LEDGER_DAY`` a request for more time, approved (what a day's ledger lists)."""
    for day in range(SESSIONS):
        started = now - timedelta(days=day, hours=1)
        local = started.date().isoformat()
        if day == LEDGER_DAY:
            yield from _more_time(reader, number, started - timedelta(minutes=5), local)
        video = reader.video_ids[max(0, day - 1)]  # the first video twice: a clear favourite
        session = SESSION_IDS + number * SESSIONS + day
        ids = {"session_id": session, "profile_id": reader.profile_id, "video_id": video}
        yield SessionStarted(
            occurred_at=started,
            actor=reader.sub,
            user_id=reader.user_id,
            timezone="UTC",
            local_date=local,
            **ids,
        )
        watched = 0.0
        for beat in range(1, BEATS + 1):
            watched = beat * BEAT_SECONDS * (day + 1)
            yield SessionHeartbeat(
                occurred_at=started + timedelta(seconds=watched),
                actor=reader.sub,
                shares=(DayShare(local, BEAT_SECONDS * (day + 1)),),
                position=watched,
                watched_seconds=watched,
                **ids,
            )
        ended = started + timedelta(seconds=watched + 1)
        yield SessionEnded(
            occurred_at=ended,
            actor=reader.sub,
            reason="ended",
            ended_at=ended,
            started_at=started,
            watched_seconds=watched,
            position=watched,
            **ids,
        )


def _more_time(reader: Reader, number: int, at: datetime, local: str) -> Iterator[AnyEvent]:
    """The child asks for 15 minutes, the parent approves a minute later."""
    ids = {"request_id": number + 1, "profile_id": reader.profile_id, "local_date": local}
    yield TimeRequested(occurred_at=at, actor=reader.sub, minutes=15, message="please", **ids)
    decided = at + timedelta(minutes=1)
    yield TimeRequestDecided(
        occurred_at=decided, actor=reader.sub, status="approved", minutes=15, **ids
    )
    yield BonusGranted(
        occurred_at=decided,
        actor=reader.sub,
        profile_id=reader.profile_id,
        local_date=local,
        minutes=15,
        total_minutes=15,
        request_id=number + 1,
    )


def readers_history(readers: list[Reader]) -> list[AnyEvent]:
    """Every reader's week, in the order it happened."""
    now = datetime.now(UTC)
    history = [e for n, r in enumerate(readers) for e in reader_history(r, n, now)]
    return sorted(history, key=lambda event: event.occurred_at)


def others(count: int, seed: int) -> Iterator[AnyEvent]:
    """``count`` events of the other families, ending about now (``bench.workload``'s mix)."""
    start = datetime.now(UTC) - timedelta(milliseconds=count * 10.5)  # ~10.5 ms apart
    mix = realistic_events(count, seed=seed, profiles=OTHER_PROFILES, start=start)
    return (event for _key, event in mix)


class Archive:
    """Writes events through every SQL projection, numbering their stream ids in one shard;
    personal bodies are sealed with ``keyring`` (the API's master key, so it can open them)."""

    def __init__(self, engine: AsyncEngine, keyring: Keyring) -> None:
        self.engine = engine
        others = [kind() for kind in SQL_PROJECTIONS if kind is not archive.Archive]
        self.projections: list[SqlProjection] = [*others, archive.Archive(keyring=keyring)]
        self.appended = 0
        self.stream_ms = 0  # stream ids: the time of writing and a running number, as XADD's

    async def size(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.count()).select_from(events))).one()[0]
            )

    async def write(self, history: Iterable[AnyEvent]) -> None:
        iterator = iter(history)
        while True:
            self.stream_ms = max(self.stream_ms, int(time.time() * 1000))
            batch = [self._envelope(event) for event in itertools.islice(iterator, BATCH)]
            if not batch:
                return
            async with self.engine.begin() as conn:
                for projection in self.projections:
                    handled = [
                        e for e in batch if not projection.handles or e.type in projection.handles
                    ]
                    if handled:
                        await projection.apply(conn, handled)

    async def grow(self, size: int, seed: int = 11) -> None:
        """Add other families' events until the archive holds ``size`` events, then settle the
        tables (``VACUUM ANALYZE``, as autovacuum would soon) so reads meet a steady state."""
        current = await self.size()
        # A seed of its own per step of 10,000 events: a second ``grow`` (10k, then 1M) must
        # not number its sessions and profiles as the first one did.
        await self.write(others(max(0, size - current), seed + current // 10_000))
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE"))

    def _envelope(self, event: AnyEvent) -> Envelope:
        self.appended += 1
        name, version, data = encode(event)
        return Envelope(0, f"{self.stream_ms}-{self.appended}", name, version, data, event)
