"""``MEDIO_RETENTION_DAYS``: events older than the horizon lose their personal data, and the
parents' stats stay as they were (CONTRACT §15).

A run (the ``retention`` periodic job) pauses and drains the projectors like an erasure
(``services.privacy``), then in one transaction:

* shreds the sealed body of every ``progress.*`` and ``series_progress.*`` event older than the
  horizon, and of every event of each session that ended before it (a session still running
  at the horizon waits for the next run, so a session is never half shredded). The rows keep
  their place, type and time and read as erased, as after an erasure; the subject's key stays,
  for its newer events;
* deletes those sessions' rows from ``watch_sessions`` (a replay no longer sees them either);
* carries over what those sessions had added to each profile's stats as one ``stats.carried``
  event per profile, sealed with the profile's key and appended to the archive only (shard
  ``ARCHIVE_ONLY_SHARD``: the live stats already hold it), so a replay adds back exactly that.

Then a ``privacy.retention_applied`` event (no personal data) records the run.

On a partitioned archive (Postgres, ``adapters.archive_partitions``) the run then drops every
partition wholly past the horizon whose rows a replay no longer needs: each row older than the
horizon, and each either unreadable (shredded or erased) or of a type no projection handles
(``privacy.*`` records), or a ``stats.carried`` row. Such carried rows are first carried over
again, summed per profile into new ``stats.carried`` rows at the head of the archive, so the
stats and a replay stay what they were. A partition holding anything else (a session still
running at the horizon, a device or policy event a projection still needs, a row stored in the
clear) is kept, and tried again at the next run. A dropped partition's positions are a gap in
the archive: readers page by position and never relied on positions being contiguous.

The horizon is at least 31 days (``MIN_RETENTION_DAYS``): by then a shredded save's resume key
and a shredded session's Redis state have expired, so the Redis read models need no carry-over.
Stats carried over stay until the child or the family is erased.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.archive_partitions import Partition, drop_partition, ensure_room, partitions
from adapters.container import Container
from adapters.keyring import ERASED_KEY, Keyring
from adapters.settings import Settings
from adapters.tables import events, privacy_keys, watch_sessions
from domain.codec import UnknownEvent, decode, encode
from domain.events import (
    RetentionApplied,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
    StatsCarried,
)
from domain.privacy import profile_subject
from projections.archive import ARCHIVE_ONLY_SHARD, POSITION_LOCK_KEY, place_of
from projections.base import Envelope
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.runtime import projectors_caught_up
from projections.stats import sum_stats

log = logging.getLogger(__name__)

RETAINER = "system:retention"
PAGE = 5000
_SESSION = (SessionStarted, SessionHeartbeat, SessionEnded)


async def apply_retention(container: Container) -> int:
    """Shred what is older than ``MEDIO_RETENTION_DAYS``; how many events (0 when it is off)."""
    settings = container.settings
    if not settings.retention_days:
        return 0
    now = container.clock.now()
    horizon = now - timedelta(days=settings.retention_days)
    async with projectors_caught_up(container):
        async with container.engine.begin() as conn:
            shredded = await _shred(conn, container.keyring, horizon, settings)
        await drop_old_partitions(container, horizon)
    if shredded:
        ran = RetentionApplied(occurred_at=now, actor=RETAINER, horizon=horizon, events=shredded)
        await container.events.append(RETAINER, ran)
    return shredded


async def _shred(
    conn: AsyncConnection, keyring: Keyring, horizon: datetime, settings: Settings
) -> int:
    doomed: list[int] = []
    sessions: dict[int, list[tuple[int, Envelope]]] = defaultdict(list)
    ended: set[int] = set()
    async for position, envelope in _older(conn, keyring, horizon):
        event = envelope.event
        if isinstance(event, _SESSION):
            sessions[event.session_id].append((position, envelope))
            if isinstance(event, SessionEnded):
                ended.add(event.session_id)
        elif not isinstance(event, StatsCarried):
            doomed.append(position)
    finished = [envelope for sid in ended for _, envelope in sessions[sid]]
    doomed += [position for sid in ended for position, _ in sessions[sid]]
    await _carry_over(conn, keyring, finished, horizon, settings)
    for start in range(0, len(doomed), PAGE):
        chunk = doomed[start : start + PAGE]
        await conn.execute(
            events.update().where(events.c.position.in_(chunk)).values(data="", actor="")
        )
    ids = sorted(ended)
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        await conn.execute(watch_sessions.delete().where(watch_sessions.c.session_id.in_(chunk)))
    return len(doomed)


async def _older(conn: AsyncConnection, keyring: Keyring, horizon: datetime) -> Any:
    """``(position, envelope)`` of every readable sealed event older than ``horizon``."""
    after = 0
    while True:
        rows = (
            await conn.execute(
                sa.select(
                    events.c.position,
                    events.c.shard,
                    events.c.stream_id,
                    events.c.type,
                    events.c.version,
                    events.c.data,
                    events.c.key_id,
                )
                .where(
                    events.c.position > after,
                    events.c.occurred_at < horizon,
                    events.c.key_id.is_not(None),
                    events.c.key_id != ERASED_KEY,
                    events.c.data != "",
                )
                .order_by(events.c.position)
                .limit(PAGE)
            )
        ).all()
        bodies = await keyring.open(
            conn, [(r.key_id, place_of(r.shard, r.stream_id), r.data) for r in rows]
        )
        for row, body in zip(rows, bodies, strict=True):
            if body is None:
                continue  # erased already
            try:
                event = decode(row.type, row.version, body)
            except UnknownEvent:
                continue
            yield (
                row.position,
                Envelope(row.shard, row.stream_id, row.type, row.version, body, event),
            )
        if len(rows) < PAGE:
            return
        after = rows[-1].position


async def _carry_over(
    conn: AsyncConnection,
    keyring: Keyring,
    finished: list[Envelope],
    horizon: datetime,
    settings: Settings,
) -> None:
    """One ``stats.carried`` per profile: what ``finished`` sessions added to its stats."""
    if not finished:
        return
    sums = sum_stats(finished)
    carried: dict[int, StatsCarried] = {}
    for profile_id in sorted(sums.totals.keys() | {p for p, _ in sums.videos}):
        daily = sorted((d.isoformat(), ms) for (p, d), ms in sums.daily.items() if p == profile_id)
        videos = sorted((v, n, ms) for (p, v), (n, ms) in sums.videos.items() if p == profile_id)
        ms, count, watched = sums.totals.get(profile_id, [0, 0, 0])
        carried[profile_id] = StatsCarried(
            occurred_at=horizon,
            actor=RETAINER,
            profile_id=profile_id,
            daily=tuple(daily),
            videos=tuple(videos),
            totals=(ms, count, watched),
        )
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(POSITION_LOCK_KEY)))
    last = (await conn.execute(sa.select(sa.func.max(events.c.position)))).scalar() or 0
    size, ahead = settings.archive_partition_size, settings.archive_partitions_ahead
    await ensure_room(conn, last + len(carried), size, ahead)
    rows: list[dict[str, Any]] = []
    bodies: list[tuple[str | None, str, bytes]] = []
    for offset, (profile_id, event) in enumerate(carried.items(), start=1):
        name, version, data = encode(event)
        stream_id = f"0-{last + offset}"
        bodies.append((profile_subject(profile_id), place_of(ARCHIVE_ONLY_SHARD, stream_id), data))
        rows.append(
            {
                "position": last + offset,
                "shard": ARCHIVE_ONLY_SHARD,
                "stream_id": stream_id,
                "type": name,
                "version": version,
                "occurred_at": horizon,
                "actor": "",
            }
        )
    sealed = await keyring.seal(conn, bodies)
    await conn.execute(
        events.insert(),
        [
            {**row, "key_id": key_id, "data": text}
            for row, (key_id, text) in zip(rows, sealed, strict=True)
        ],
    )


def _needed_types() -> frozenset[str] | None:
    """The event types some projection (other than the archive) applies; ``None``: all."""
    needed: set[str] = set()
    handled: list[frozenset[str]] = [c.handles for c in SQL_PROJECTIONS if c.name != "archive"]
    handled += [c.handles for c in REDIS_PROJECTIONS]
    for handles in handled:
        if not handles:
            return None
        needed |= handles
    return frozenset(needed)


def _readable(table: sa.Table) -> sa.ColumnElement[bool]:
    """Rows whose data can still be read: not shredded, and clear or sealed with a live key."""
    live_key = sa.exists().where(privacy_keys.c.id == table.c.key_id)
    return sa.and_(table.c.data != "", sa.or_(table.c.key_id.is_(None), live_key))


async def drop_old_partitions(container: Container, horizon: datetime) -> list[Partition]:
    """Drop the archive partitions wholly past ``horizon`` that a replay no longer needs
    (see the module's docstring); the ones dropped. Nothing on a plain (SQLite) archive."""
    async with container.engine.connect() as conn:
        found = await partitions(conn)
        head = int(await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0)
    dropped = []
    for partition in found:
        if partition.upper > head:  # holds the newest row, or is still to be filled
            break
        try:
            async with container.engine.begin() as conn:
                if await _drop_if_done(conn, container, partition, horizon):
                    dropped.append(partition)
        except sa.exc.OperationalError as exc:  # a reader held it past the lock timeout
            log.warning("archive partition %s kept until the next run: %s", partition.name, exc)
    if dropped:
        log.info("retention dropped archive partitions %s", [p.name for p in dropped])
    return dropped


async def _drop_if_done(
    conn: AsyncConnection, container: Container, partition: Partition, horizon: datetime
) -> bool:
    table = events.to_metadata(sa.MetaData(), name=partition.name)
    newest = await conn.scalar(sa.select(sa.func.max(table.c.occurred_at)))
    if newest is not None and newest >= horizon:
        return False
    needed = _needed_types()
    blocking = _readable(table) & (table.c.type != StatsCarried.__struct_config__.tag)
    if needed is not None:
        blocking = blocking & table.c.type.in_(sorted(needed))
    if await conn.scalar(sa.select(table.c.position).where(blocking).limit(1)) is not None:
        return False
    carried = (
        await conn.execute(
            sa.select(
                table.c.shard,
                table.c.stream_id,
                table.c.type,
                table.c.version,
                table.c.data,
                table.c.key_id,
            )
            .where(_readable(table), table.c.type == StatsCarried.__struct_config__.tag)
            .order_by(table.c.position)
        )
    ).all()
    if carried:
        bodies = await container.keyring.open(
            conn, [(r.key_id, place_of(r.shard, r.stream_id), r.data) for r in carried]
        )
        envelopes = [
            Envelope(r.shard, r.stream_id, r.type, r.version, body, decode(r.type, r.version, body))
            for r, body in zip(carried, bodies, strict=True)
            if body is not None
        ]
        await _carry_over(conn, container.keyring, envelopes, horizon, container.settings)
    await drop_partition(conn, partition)
    return True
