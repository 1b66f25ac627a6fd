"""What a projection is: which events it handles, how it applies a batch, where it keeps state.

Two kinds, by where the read model lives:

* ``SqlProjection`` writes rows through an ``AsyncConnection``; the runtime calls ``apply``
  inside the transaction that also moves the projection's checkpoint, so rows and position
  commit together. Its rows go through a writer interface of its own with two backends
  (``RowWriters``): asyncpg's bulk statements on Postgres, SQLAlchemy statements elsewhere.
* ``RedisProjection`` appends its commands to a command list (``Commands``); the runtime runs
  the list in one script that also moves the checkpoint, so the batch and the position apply
  atomically.

Both receive only events they ``handle`` that are newer than their checkpoint, in stream
order (which is per-key order). Both can be built against scratch storage (``scratch=True``)
for ``medio replay --verify``, and can ``dump`` their whole state for comparison.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.cluster import unlink_chunks
from adapters.eventlog import shard_for
from adapters.settings import Settings
from domain.events import AnyEvent

Arg = str | bytes | int | float
Command = tuple[Arg, ...]  # one Redis command's arguments, its name first: ("INCRBY", key, 5)
Commands = list[Command]  # a batch's Redis writes, in the order they run

SCRATCH_SUFFIX = "__rebuild"
SCRATCH_PREFIX = "medio:rebuild:"


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as delivered from the log: where it sits and its stored form."""

    shard: int
    stream_id: str  # the Redis stream entry id, e.g. "1732270000000-3"
    type: str
    version: int
    data: bytes  # the JSON body as appended (archive stores it unchanged)
    event: AnyEvent  # decoded and upcast to the current version


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), never as text."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


Backend = Literal["asyncpg", "sqlalchemy"]
Writer = TypeVar("Writer")


@dataclass(frozen=True)
class RowWriters(Generic[Writer]):
    """A SQL projection's two writers of the same rows, behind its own interface ``Writer``.

    ``asyncpg`` writes a batch in a few bulk statements on the raw asyncpg connection (what
    Medio runs on Postgres; see ``projections.bulk_sql``); ``sqlalchemy`` writes it with
    SQLAlchemy statements on any database (SQLite for ``medio dev``). Both must leave the same
    rows: ``tests/integration/test_row_writers.py`` runs one contract on each.
    """

    asyncpg: Writer
    sqlalchemy: Writer

    def pick(self, conn: AsyncConnection, backend: Backend | None = None) -> Writer:
        """The writer for ``backend``; by default the one ``conn``'s driver allows."""
        chosen = backend or ("asyncpg" if conn.dialect.driver == "asyncpg" else "sqlalchemy")
        return self.asyncpg if chosen == "asyncpg" else self.sqlalchemy


class SqlProjection(ABC):
    """A read model in the relational database."""

    name: ClassVar[str]
    handles: ClassVar[frozenset[str]]  # event type names; empty means every event
    live_tables: ClassVar[Sequence[sa.Table]] = ()

    def __init__(self, scratch: bool = False, backend: Backend | None = None) -> None:
        """``backend`` pins which of its row writers the projection uses (tests compare them);
        by default the connection's driver decides."""
        self.scratch = scratch
        self.backend = backend
        self.tables = {t.name: scratch_copy(t) if scratch else t for t in self.live_tables}

    @abstractmethod
    async def apply(self, conn: AsyncConnection, batch: Sequence[Envelope]) -> None:
        """Write the effect of ``batch`` (already filtered and de-duplicated)."""

    async def dump(self, conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in primary-key order, for verify."""
        result: dict[str, list[tuple[Any, ...]]] = {}
        for live in self.live_tables:
            table = self.tables[live.name]
            order = [table.c[c.name] for c in live.primary_key.columns] or list(table.c)
            rows = await conn.execute(sa.select(table).order_by(*order))
            result[live.name] = [tuple(row) for row in rows]
        return result


_scratch_metadata = sa.MetaData()


def scratch_copy(table: sa.Table) -> sa.Table:
    """The same table under ``<name>__rebuild`` (indexes and constraints renamed to match)."""
    name = table.name + SCRATCH_SUFFIX
    if name in _scratch_metadata.tables:
        return _scratch_metadata.tables[name]
    copy = table.to_metadata(_scratch_metadata, name=name)
    for index in copy.indexes:
        index.name = sa.sql.elements.quoted_name(f"{index.name}{SCRATCH_SUFFIX}", None)
    for constraint in copy.constraints:
        if isinstance(constraint.name, str):
            constraint.name = f"{constraint.name}{SCRATCH_SUFFIX}"
    return copy


class RedisProjection(ABC):
    """A read model in Redis. ``key`` prefixes every key it writes, so scratch copies differ."""

    name: ClassVar[str]
    handles: ClassVar[frozenset[str]]

    def __init__(self, scratch: bool = False, settings: Settings | None = None) -> None:
        """``settings``: limits a projection applies (the defaults' when None); live, replay and
        verify pass the same ones, so they decide alike."""
        self.scratch = scratch
        self.prefix = SCRATCH_PREFIX if scratch else ""
        self.settings = settings or Settings()

    def key(self, name: str) -> str:
        return self.prefix + name

    async def prepare(self, redis: Redis, batch: Sequence[Envelope]) -> Any:
        """Optional reads before ``apply`` (the runtime watches nothing read here)."""
        return None

    @abstractmethod
    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        """Append the commands for ``batch`` to ``commands`` (they run later, all at once:
        nothing here may depend on a reply)."""

    @abstractmethod
    async def dump(self, redis: Redis) -> dict[str, Any]:
        """The whole state (found through the projection's own index keys, never SCAN)."""

    @abstractmethod
    async def clear(self, redis: Redis) -> None:
        """Delete the whole state (used before a rebuild swaps in)."""

    async def forget(
        self, redis: Redis, clerk_ids: Collection[str], profile_ids: Collection[int]
    ) -> None:
        """Delete everything held for these users and profiles (their erasure, CONTRACT §15);
        their events are erased too, so a rebuild holds nothing of them either. A projection
        that holds nobody's personal data keeps this as it is."""
        return None


UNLINK_CHUNK = 1000  # keys per UNLINK, so clearing never holds Redis for long


class ProfileKeyedProjection(RedisProjection):
    """A Redis read model keyed by profile. A profile's keys carry its shard's hash tag, and one
    set per shard lists the profiles that have keys (in their slot, so a Redis Cluster reads
    each set with its profiles' keys): ``key_space`` names both."""

    key_space: ClassVar[str]

    def _shard(self, profile_id: int) -> int:
        return shard_for(str(profile_id), self.settings.stream_shards)

    def _profiles(self, shard: int) -> str:
        """The profiles with keys on ``shard``."""
        return self.key(f"{self.key_space}:{{{shard}}}:profiles")

    async def _all_profiles(self, redis: Redis) -> list[int]:
        found: list[int] = []
        for shard in range(self.settings.stream_shards):
            found += [int(p) for p in await redis.smembers(self._profiles(shard))]
        return sorted(found)

    async def _clear_profiles(self, redis: Redis, keys: Sequence[str]) -> None:
        """Unlink the profiles' ``keys`` in chunks, then the lists of profiles: last, so a clear
        that fails part way is finished by the next one."""
        await unlink_chunks(redis, keys, UNLINK_CHUNK)
        for shard in range(self.settings.stream_shards):
            await redis.unlink(self._profiles(shard))

    async def _forget_profile(self, redis: Redis, profile_id: int, keys: Sequence[str]) -> None:
        """Unlink one profile's ``keys`` and take it off its shard's list."""
        await redis.unlink(*keys)
        await redis.srem(self._profiles(self._shard(profile_id)), str(profile_id))

    def _list_profiles(self, commands: Commands, profile_ids: Collection[int]) -> None:
        """One ``SADD`` per shard listing ``profile_ids``."""
        by_shard: dict[int, list[str]] = {}
        for profile_id in profile_ids:
            by_shard.setdefault(self._shard(profile_id), []).append(str(profile_id))
        for shard, members in by_shard.items():
            commands.append(("SADD", self._profiles(shard), *members))
