"""``medio replay``: rebuild projections from the archive, or verify them against it.

Both run with the live projectors paused (every shard lock held), so nothing moves underneath:

* rebuild: SQL projections are replayed into ``<table>__rebuild`` tables, then one
  transaction drops the live tables, renames the rebuilt ones into their place and sets the
  checkpoints to the archive's;
  Redis projections (whose keys cannot be renamed as a set) are cleared and replayed in place.
  Then the stream tail the archive has not reached yet is projected, and the pause ends.
* verify: every projection is replayed into scratch storage up to its own live checkpoint
  per shard, both are dumped, and the differences are reported; scratch is dropped after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import heap
from adapters.container import Container
from adapters.tables import events
from projections.apply import is_transient
from projections.archive_reader import ArchiveChunks
from projections.base import (
    SCRATCH_SUFFIX,
    Envelope,
    RedisProjection,
    SqlProjection,
    stream_id_key,
)
from projections.checkpoints import (
    ZERO,
    read_redis_checkpoints,
    read_sql_checkpoints,
    redis_checkpoint_key,
    set_sql_checkpoints,
)
from projections.compare import differences
from projections.locks import projectors_paused
from projections.read_versions import models_replaced
from projections.redis_batch import apply_redis
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.runtime import drain_shard

ARCHIVE = "archive"
HANDOVER_SECONDS = 30.0

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (events read, events in the archive)
Bound = dict[int, tuple[int, int]]  # shard -> last stream id (as a key) to replay


@dataclass
class ReplayReport:
    """What a replay did: events read, entries a projection refused, and (verify) diffs."""

    projections: list[str]
    events: int = 0
    seconds: float = 0.0
    refused: dict[str, int] = field(default_factory=dict)
    differences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class _Target:
    """One projection being replayed: where it writes and how far (per shard) it may go."""

    projection: SqlProjection | RedisProjection
    bound: Bound | None = None  # None: the whole archive


def replayable(names: Sequence[str] | None = None) -> list[str]:
    """The projections ``names`` selects (default: every registered one but the archive)."""
    every = [cls.name for cls in SQL_PROJECTIONS] + [cls.name for cls in REDIS_PROJECTIONS]
    known = [name for name in every if name != ARCHIVE]
    if not names:
        return known
    for name in names:
        if name == ARCHIVE:
            raise ValueError("the archive is what replay reads; it cannot be rebuilt from itself")
        if name not in known:
            raise ValueError(f"unknown projection {name!r}; known: {', '.join(known)}")
    return list(names)


def _paused(container: Container) -> AbstractAsyncContextManager[str]:
    """Every live projector stopped for a replay, all shard locks held (``projectors_paused``)."""
    settings = container.settings
    return projectors_paused(
        container.redis,
        settings.stream_shards,
        settings.projector_lock_ttl_seconds,
        HANDOVER_SECONDS,
    )


async def rebuild(
    container: Container, names: Sequence[str] | None = None, progress: Progress | None = None
) -> ReplayReport:
    """Rebuild ``names`` from the archive and swap them in; the live projectors pause."""
    selected = replayable(names)
    sql = [cls(scratch=True) for cls in SQL_PROJECTIONS if cls.name in selected]
    redis_live = [
        cls(settings=container.settings) for cls in REDIS_PROJECTIONS if cls.name in selected
    ]
    settings = container.settings
    report = ReplayReport(selected)
    async with _paused(container) as owner:
        async with container.engine.connect() as conn:
            archived = await read_sql_checkpoints(conn)
        reached = {s: archived.get((ARCHIVE, s), ZERO) for s in range(settings.stream_shards)}
        targets = [_Target(p) for p in sql] + [_Target(p) for p in redis_live]
        await models_replaced(container.redis, settings.stream_shards)
        await _replay(container, targets, report, progress)
        await _swap_sql(container.engine, sql, reached)
        if redis_live:
            await container.redis.mset(
                {
                    redis_checkpoint_key(p.name, shard): position
                    for p in redis_live
                    for shard, position in reached.items()
                }
            )
        # Rows were swapped in, not projected: answers kept from the old ones lapse.
        await models_replaced(container.redis, settings.stream_shards)
        for shard in range(settings.stream_shards):  # the tail beyond the archive
            await drain_shard(container, shard, owner)
    return report


async def verify(
    container: Container, names: Sequence[str] | None = None, progress: Progress | None = None
) -> ReplayReport:
    """Replay ``names`` into scratch storage and report how the live ones differ."""
    selected = replayable(names)
    settings = container.settings
    shards = range(settings.stream_shards)
    report = ReplayReport(selected)
    async with _paused(container):
        async with container.engine.connect() as conn:
            sql_positions = await read_sql_checkpoints(conn)
        targets: list[_Target] = []
        pairs: list[tuple[Any, Any]] = []
        for cls in SQL_PROJECTIONS:
            if cls.name in selected:
                bound = {s: stream_id_key(sql_positions.get((cls.name, s), ZERO)) for s in shards}
                scratch = cls(scratch=True)
                targets.append(_Target(scratch, bound))
                pairs.append((cls(), scratch))
        for rcls in REDIS_PROJECTIONS:
            if rcls.name in selected:
                bound = {}
                for s in shards:
                    at = await read_redis_checkpoints(container.redis, [rcls.name], s)
                    bound[s] = stream_id_key(at[rcls.name])
                rscratch = rcls(scratch=True, settings=settings)
                targets.append(_Target(rscratch, bound))
                pairs.append((rcls(settings=settings), rscratch))
        sql_scratch = [t.projection for t in targets if isinstance(t.projection, SqlProjection)]
        redis_scratch = [t.projection for t in targets if isinstance(t.projection, RedisProjection)]
        try:
            await _replay(container, targets, report, progress)
            with heap.frozen():  # as in the replay: the dumps are many long-lived objects
                dumps = await _each(
                    container, [partial(_dump, container, p) for pair in pairs for p in pair]
                )
                for (live, _), live_dump, scratch_dump in zip(
                    pairs, dumps[::2], dumps[1::2], strict=True
                ):
                    tables = isinstance(live, SqlProjection)
                    found = differences(live_dump, scratch_dump, tables=tables)
                    if found:
                        report.differences[live.name] = found
        finally:
            await _each(
                container,
                [
                    partial(_drop_scratch, container.engine, sql_scratch),
                    *[partial(p.clear, container.redis) for p in redis_scratch],
                ],
            )
    return report


async def _dump(container: Container, projection: Any) -> dict[str, Any]:
    if isinstance(projection, SqlProjection):
        async with container.engine.connect() as conn:
            return dict(await projection.dump(conn))
    return dict(await projection.dump(container.redis))


async def _each(
    container: Container, work: Sequence[Callable[[], Coroutine[Any, Any, T]]]
) -> list[T]:
    """Run ``work`` concurrently; one after another on SQLite (one writer at a time anyway).

    A failure cancels the rest and waits for them, so no scratch work outlives the pause.
    """
    if container.settings.is_sqlite:
        return [await step() for step in work]
    tasks = [asyncio.create_task(step()) for step in work]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()  # those still running after a failure
        await asyncio.gather(*tasks, return_exceptions=True)


async def _replay(
    container: Container, targets: list[_Target], report: ReplayReport, progress: Progress | None
) -> None:
    """Create the SQL targets' scratch tables, clear the Redis targets, and apply the archive
    to them all, counting refusals in ``report``.

    The archive is read from the start, so its first chunk arrives while storage is readied.
    The tables come before the clear: if they cannot be made, live Redis state is intact.
    What exists before is exempt from garbage collection meanwhile: the chunks' many
    long-lived objects otherwise set off full collections that walk it all again and again.
    """
    started = time.perf_counter()
    sql = [t.projection for t in targets if isinstance(t.projection, SqlProjection)]
    redis = [t.projection for t in targets if isinstance(t.projection, RedisProjection)]
    with heap.frozen():
        async with ArchiveChunks(container.engine, container.keyring) as chunks:
            await _create_scratch(container.engine, sql)
            await _each(container, [partial(p.clear, container.redis) for p in redis])
            await _apply_chunks(container, targets, chunks, report, progress, started)


async def _apply_chunks(
    container: Container,
    targets: list[_Target],
    chunks: ArchiveChunks,
    report: ReplayReport,
    progress: Progress | None,
    started: float,
) -> None:
    async with container.engine.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.max(events.c.position)))).scalar() or 0
    if progress:
        progress(0, total)
    bounded = any(t.bound is not None for t in targets)
    async for batch, read in chunks:
        keys = [stream_id_key(e.stream_id) for e in batch] if bounded else None
        work = [(t.projection, todo) for t in targets if (todo := _selected(batch, keys, t))]
        refusals = await _each(container, [partial(_apply_isolating, container, *w) for w in work])
        for (projection, _), refused in zip(work, refusals, strict=True):
            if refused:
                report.refused[projection.name] = report.refused.get(projection.name, 0) + refused
        report.events += read
        report.seconds = time.perf_counter() - started
        if progress:
            progress(report.events, total)


def _selected(
    batch: list[Envelope], keys: list[tuple[int, int]] | None, target: _Target
) -> list[Envelope]:
    """The events of ``batch`` that ``target`` handles, up to its bound (``keys``: their ids).

    Rows of no stream shard (``ARCHIVE_ONLY_SHARD``: what a retention run carried over) were
    never in the log, so no checkpoint bounds them: they are always applied."""
    handles = target.projection.handles
    bound = target.bound
    if bound is None or keys is None:
        return [e for e in batch if e.type in handles] if handles else batch
    return [
        e
        for key, e in zip(keys, batch, strict=True)
        if (not handles or e.type in handles) and (e.shard not in bound or key <= bound[e.shard])
    ]


async def _apply_isolating(
    container: Container, projection: SqlProjection | RedisProjection, batch: list[Envelope]
) -> int:
    """Apply ``batch``; entries the projection refuses (as live did) are skipped and counted."""
    try:
        if isinstance(projection, SqlProjection):
            async with container.engine.begin() as conn:
                await projection.apply(conn, batch)
        else:
            await apply_redis(container.redis, projection, batch)
        return 0
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(batch) == 1:
            return 1
        half = len(batch) // 2
        first = await _apply_isolating(container, projection, batch[:half])
        return first + await _apply_isolating(container, projection, batch[half:])


def _ordered(projections: Sequence[SqlProjection]) -> list[sa.Table]:
    return sa.sql.util.sort_tables([t for p in projections for t in p.tables.values()])


async def _create_scratch(engine: AsyncEngine, projections: Sequence[SqlProjection]) -> None:
    await _drop_scratch(engine, projections)
    async with engine.begin() as conn:
        for table in _ordered(projections):
            await conn.run_sync(table.create)


async def _drop_scratch(engine: AsyncEngine, projections: Sequence[SqlProjection]) -> None:
    async with engine.begin() as conn:
        for table in reversed(_ordered(projections)):
            await conn.run_sync(table.drop, checkfirst=True)


async def _swap_sql(
    engine: AsyncEngine, projections: Sequence[SqlProjection], reached: dict[int, str]
) -> None:
    """Put the rebuilt tables in place of the live ones and move the checkpoints, in one
    transaction: renaming costs the same for any number of rows, where copying them back
    would write every row a second time. The projectors stay paused until this commits, so
    on Postgres it is a handful of round trips, not one per statement."""
    if not projections:
        return
    pairs = [(live, p.tables[live.name]) for p in projections for live in p.live_tables]
    async with engine.begin() as conn:
        if conn.dialect.driver == "asyncpg":
            await _rename_into_place(conn, pairs)
        else:
            for live, rebuilt in pairs:
                await _replace(conn, live, rebuilt)
        for shard, position in reached.items():
            await set_sql_checkpoints(conn, {p.name: position for p in projections}, shard)


async def _rename_into_place(
    conn: AsyncConnection, pairs: Sequence[tuple[sa.Table, sa.Table]]
) -> None:
    """Drop each live table and give the rebuilt one its name, and its indexes their live
    names (a primary key's or unique constraint's is renamed with its index), so nothing is
    rebuilt and the result is the table the migrations create (a test compares the two).
    """
    quote = conn.dialect.identifier_preparer.quote
    query = sa.text(
        "SELECT tablename, indexname FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename IN :tables"
    ).bindparams(sa.bindparam("tables", expanding=True))
    found = await conn.execute(query, {"tables": [rebuilt.name for _, rebuilt in pairs]})
    indexes: dict[str, list[str]] = {}
    for table, index in found:
        indexes.setdefault(table, []).append(index)
    statements: list[str] = []
    for live, rebuilt in pairs:
        statements.append(f"DROP TABLE {quote(live.name)}")
        statements.append(f"ALTER TABLE {quote(rebuilt.name)} RENAME TO {quote(live.name)}")
        for index in sorted(indexes.get(rebuilt.name, [])):
            if SCRATCH_SUFFIX in index:
                renamed = index.replace(SCRATCH_SUFFIX, "")
                statements.append(f"ALTER INDEX {quote(index)} RENAME TO {quote(renamed)}")
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.execute(";\n".join(statements))  # one round trip, inside this transaction


async def _replace(conn: AsyncConnection, live: sa.Table, rebuilt: sa.Table) -> None:
    """Drop ``live`` and give ``rebuilt`` its name; the indexes are recreated under the live
    names, as SQLite cannot rename an index (a development database is small).

    The result must be the table the migrations create (a test compares the two).
    """
    quote = conn.dialect.identifier_preparer.quote
    await conn.run_sync(live.drop)
    await conn.execute(sa.text(f"ALTER TABLE {quote(rebuilt.name)} RENAME TO {quote(live.name)}"))
    for index in rebuilt.indexes:
        await conn.run_sync(index.drop)
    for index in live.indexes:
        await conn.run_sync(index.create)
