"""The SQL projections' row writers: one contract, run on every backend and database.

Each SQL projection writes its rows through an interface of its own (``ArchiveWriter``,
``SessionRowWriter``, ``StatsRowWriter``) with two backends: asyncpg's bulk statements, which
Medio runs on Postgres, and SQLAlchemy statements, which ``medio dev`` runs on SQLite
(``projections.base.RowWriters``). ``RowWritersContract`` holds the cases; each subclass runs
them on one backend and database of its own (Postgres or SQLite, created for this module).
Every case commits through ``ProjectionSet.commit``, rows and checkpoints in one transaction as
the projector does, and expects the same rows written out below: so every backend writes the
same rows for the same events, redelivered or not, in batches of any size, old event versions
included. The commit's fence and ack use a stream of a shard no other test uses (``SHARD``) in
the run's Redis index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import msgspec
import pytest
from history_samples import archive_of_its_own

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from adapters.tables import projection_checkpoints
from domain.codec import encode
from domain.events import (
    AnyEvent,
    DayShare,
    ProgressDeleted,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
)
from medio.migrate import upgrade
from projections.apply import ProjectionSet
from projections.archive import Archive
from projections.base import Backend, SqlProjection
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection
from projections.streams import Entry, ensure_group, to_entry
from services.container import build_container

SHARD = 5  # the run's Redis index has one stream (shard 0): this one is the module's alone
T0 = datetime(2026, 3, 3, 14, 50, tzinfo=UTC)  # 23:50 in Tokyo
MIN = timedelta(minutes=1)


def _stored(event: AnyEvent) -> tuple[str, int, bytes]:
    """An event as the log holds it (type, version, JSON body)."""
    return encode(event)


def _started_before_limits(event: SessionStarted) -> tuple[str, int, bytes]:
    """``event`` as appended before session.started carried ``daily_limit_minutes`` (and so
    before it carried ``device_id``)."""
    body = msgspec.json.decode(encode(event)[2])
    del body["daily_limit_minutes"], body["device_id"]
    return "session.started", 1, msgspec.json.encode(body)


def _progress_v1(at: datetime, clerk_id: str, tmdb_id: str) -> tuple[str, int, bytes]:
    """A progress.saved of version 1 (position only), as the Express era appended it."""
    body = {
        "type": "progress.saved",
        "occurred_at": at.isoformat(),
        "actor": clerk_id,
        "clerk_id": clerk_id,
        "tmdb_id": tmdb_id,
        "current_time": 12.5,
    }
    return "progress.saved", 1, msgspec.json.encode(body)


def script(profile_id: int, first: int) -> list[tuple[str, int, bytes]]:
    """Two sessions of a profile (one across Tokyo midnight, one that watched nothing and was
    appended before session.started had a limit), with an old progress save in between."""
    s1, s2 = first, first + 1
    common: dict[str, Any] = {"actor": "t", "profile_id": profile_id}
    return [
        _stored(SessionStarted(
            occurred_at=T0, session_id=s1, video_id=5, user_id=1, timezone="Asia/Tokyo",
            local_date="2026-03-03", daily_limit_minutes=60, device_id=profile_id + 40,
            **common,
        )),
        _stored(SessionHeartbeat(
            occurred_at=T0 + 9.5 * MIN, session_id=s1, video_id=5,
            shares=(DayShare("2026-03-03", 90.0),), position=570.0, watched_seconds=90.0,
            **common,
        )),
        _started_before_limits(SessionStarted(
            occurred_at=T0 + 10 * MIN, session_id=s2, video_id=6, user_id=1,
            timezone="Asia/Tokyo", local_date="2026-03-04", public=True, **common,
        )),
        _progress_v1(T0 + 10.25 * MIN, f"clerk{profile_id}", "550"),
        _stored(SessionHeartbeat(
            occurred_at=T0 + 10.5 * MIN, session_id=s1, video_id=5,
            shares=(DayShare("2026-03-03", 30.0), DayShare("2026-03-04", 30.0)),
            watched_seconds=150.0, **common,
        )),
        _stored(SessionEnded(
            occurred_at=T0 + 11 * MIN, session_id=s2, video_id=6, reason="ended",
            ended_at=T0 + 11 * MIN, started_at=T0 + 10 * MIN, **common,
        )),
        _stored(ProgressDeleted(
            occurred_at=T0 + 12 * MIN, actor="t", clerk_id=f"clerk{profile_id}", tmdb_id="550"
        )),
        _stored(SessionEnded(
            occurred_at=T0 + 20 * MIN, session_id=s1, video_id=5, reason="timeout",
            ended_at=T0 + 10.5 * MIN, started_at=T0, watched_seconds=150.0, **common,
        )),
    ]  # fmt: skip


def session_rows(profile_id: int, first: int) -> list[tuple[Any, ...]]:
    """``watch_sessions`` after ``script(profile_id, first)``."""
    return [
        (
            first, profile_id, 5, 1, False, "Asia/Tokyo", date(2026, 3, 3), T0,
            T0 + 10.5 * MIN, T0 + 10.5 * MIN, "timeout", 150_000, 570.0, 60, profile_id + 40,
        ),
        (
            first + 1, profile_id, 6, 1, True, "Asia/Tokyo", date(2026, 3, 4), T0 + 10 * MIN,
            T0 + 11 * MIN, T0 + 11 * MIN, "ended", 0, None, None, None,
        ),
    ]  # fmt: skip


def stats_rows(profile_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """The stats tables after ``script(profile_id, ...)``."""
    return {
        "stats_daily": [
            (profile_id, date(2026, 3, 3), 120_000),
            (profile_id, date(2026, 3, 4), 30_000),
        ],
        "stats_videos": [(profile_id, 5, 1, 150_000), (profile_id, 6, 1, 0)],
        "stats_totals": [(profile_id, 150_000, 2, 1)],
    }


STORED = script(7, 100) + script(8, 200)
EXPECTED = {
    "sessions": {"watch_sessions": session_rows(7, 100) + session_rows(8, 200)},
    "stats": {
        table: stats_rows(7)[table] + stats_rows(8)[table]
        for table in ("stats_daily", "stats_videos", "stats_totals")
    },
}


def entries() -> list[Entry]:
    """``STORED`` as the projector reads it from ``SHARD``: ids ``1-0``, ``2-0``, ..."""
    return [
        to_entry(SHARD, f"{i}-0", {b"t": name.encode(), b"v": str(version).encode(), b"d": data})
        for i, (name, version, data) in enumerate(STORED, start=1)
    ]


def _utc(value: Any) -> Any:
    """SQLite gives stored instants back naive; every one is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class RowWritersContract:
    """The cases every backend of the SQL projections' row writers must pass."""

    backend: ClassVar[Backend]
    database: ClassVar[str]  # the fixture of its database's settings: "postgres" or "sqlite"

    @pytest.fixture
    def own(self, request: pytest.FixtureRequest) -> Settings:
        """The settings of the backend's database."""
        settings: Settings = request.getfixturevalue(self.database)
        return settings

    @pytest.fixture
    async def stores(self, own: Settings) -> AsyncIterator[Container]:
        """A container on the backend's database, its projection tables and checkpoints empty."""
        container = build_container(own)
        async with container.engine.begin() as conn:
            for projection in self.projections().sql:
                for table in projection.tables.values():
                    await conn.execute(table.delete())
            await conn.execute(projection_checkpoints.delete())
        await container.redis.delete(stream_name(SHARD))
        await ensure_group(container.redis, stream_name(SHARD))  # the commit's fence reads it
        yield container
        await container.close()

    def projections(self) -> ProjectionSet:
        sql: list[SqlProjection] = [
            Archive(backend=self.backend),
            SessionsProjection(backend=self.backend),
            StatsProjection(backend=self.backend),
        ]
        return ProjectionSet(sql=sql, redis=[])

    async def commit(self, stores: Container, *batches: Sequence[Entry]) -> None:
        projections = self.projections()
        for batch in batches:
            await projections.commit(stores.engine, stores.redis, SHARD, batch, "contract")

    async def dump(self, stores: Container) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
        dumped = {}
        async with stores.engine.connect() as conn:
            for projection in self.projections().sql:
                tables = await projection.dump(conn)
                dumped[projection.name] = {
                    name: [tuple(_utc(v) for v in row) for row in rows]
                    for name, rows in tables.items()
                }
        return dumped

    async def test_archive_keeps_each_event_as_appended_old_versions_too(
        self, stores: Container
    ) -> None:
        await self.commit(stores, entries())
        archived = (await self.dump(stores))["archive"]["events"]
        assert [row[:5] for row in archived] == [
            (i, SHARD, f"{i}-0", name, version)
            for i, (name, version, _) in enumerate(STORED, start=1)
        ]
        assert [row[7] for row in archived] == [data.decode() for _, _, data in STORED]
        old = archived[3]
        assert (old[3], old[4], old[5], old[6]) == (
            "progress.saved",
            1,
            T0 + 10.25 * MIN,
            "clerk7",
        )
        assert "duration" not in old[7]  # the body as appended, not upcast

    async def test_sessions_and_stats_rows_follow_their_events(self, stores: Container) -> None:
        await self.commit(stores, entries())
        dumped = await self.dump(stores)
        assert dumped["sessions"] == EXPECTED["sessions"]
        assert dumped["stats"] == EXPECTED["stats"]

    async def test_one_event_per_batch_writes_the_same_rows(self, stores: Container) -> None:
        await self.commit(stores, *([entry] for entry in entries()))
        dumped = await self.dump(stores)
        assert dumped["sessions"] == EXPECTED["sessions"]  # later events update rows there
        assert dumped["stats"] == EXPECTED["stats"]  # and add to counters there
        assert [row[0] for row in dumped["archive"]["events"]] == list(range(1, 17))

    async def test_a_redelivered_batch_writes_nothing_twice(self, stores: Container) -> None:
        every = entries()
        await self.commit(stores, every[:5], every, every, every[3:9])
        dumped = await self.dump(stores)
        assert dumped["sessions"] == EXPECTED["sessions"]
        assert dumped["stats"] == EXPECTED["stats"]
        assert [row[2] for row in dumped["archive"]["events"]] == [e.stream_id for e in every]


@pytest.fixture(scope="module")
def postgres(settings: Settings) -> Iterator[Settings]:
    """The run's settings on a Postgres database of this module's own."""
    with archive_of_its_own(settings) as own:
        yield own


@pytest.fixture(scope="module")
def sqlite(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The run's settings on a SQLite database of this module's own."""
    path = tmp_path_factory.mktemp("sqlite") / "writers.db"
    own = msgspec.structs.replace(settings, database_url=f"sqlite:///{path}")
    upgrade(own)
    return own


class TestAsyncpgOnPostgres(RowWritersContract):
    backend = "asyncpg"
    database = "postgres"


class TestSqlAlchemyOnPostgres(RowWritersContract):
    backend = "sqlalchemy"
    database = "postgres"


class TestSqlAlchemyOnSqlite(RowWritersContract):
    backend = "sqlalchemy"
    database = "sqlite"
