"""``MEDIO_RETENTION_DAYS``: events older than the horizon lose their personal data, and the
parents' stats stay as they were (CONTRACT §15).

A run (the ``retention`` periodic job) pauses and drains the projectors like an erasure
(``services.privacy``), then in one transaction:

* shreds the sealed body of every personal event older than the horizon: progress, series
  progress and the parental-policy facts (settings, bonuses, locks, stops, time requests); every
  event of each session that ended before it (a session still running at the horizon waits for
  the next run, so a session is never half shredded); and the ``device.*`` events of each device
  revoked before it (a device still paired keeps its record: it is the family's setup, not
  viewing history). The rows keep their place, type and time and read as erased, as after an
  erasure; the subject's key stays, for its newer events;
* deletes every read-model row derived from a shredded event: those sessions' ``watch_sessions``
  rows, the ``day_ledger`` rows of shredded facts and cut-offs (found by their place in the log)
  and the revoked devices' ``devices`` rows, so a replay, which no longer sees those events,
  rebuilds the same tables and ``medio replay --verify`` stays clean;
* carries over what those sessions had added to each profile's stats as one ``stats.carried``
  event per profile, sealed with the profile's key and appended to the archive only (shard
  ``ARCHIVE_ONLY_SHARD``: the live stats already hold it), so a replay adds back exactly that
  (a snapshot at the horizon).

Then a ``privacy.retention_applied`` event (no personal data) records the run.

On a partitioned archive (Postgres, ``adapters.archive_partitions``) the same transaction
drops, instead of shredding their rows, the partitions wholly past the horizon that a replay no
longer needs: below the newest partition, each row older than the horizon, and each row that a
projection other than the archive reads either unreadable already or shredded by this run
(``privacy.*`` records, which no projection reads, do not hold a partition back). Readable
``stats.carried`` rows in such a partition are carried over again first, summed per profile
into this run's ``stats.carried`` rows at the head of the archive, so the stats and a replay stay
what they were. A partition holding anything else (a session still running at the horizon, a
device or policy event, a row stored in the clear) is kept, and tried at the next run; one whose
drop waits on readers past the lock timeout has its rows shredded instead. A dropped
partition's positions are a gap in the archive: readers page by position and skip it.
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
from adapters.tables import day_ledger, devices, events, privacy_keys, watch_sessions
from domain.codec import UnknownEvent, decode, encode
from domain.events import (
    DevicePaired,
    DeviceRevoked,
    DeviceTokenIssued,
    RetentionApplied,
    SessionEnded,
    SessionHeartbeat,
    SessionStarted,
    StatsCarried,
)
from domain.privacy import profile_subject
from projections.archive import ARCHIVE_ONLY_SHARD, POSITION_LOCK_KEY, place_of
from projections.archive_pages import archive_rewritten
from projections.base import Envelope, stream_id_key
from projections.ledger import entry_of
from projections.read_versions import models_replaced
from projections.registry import REDIS_PROJECTIONS, SQL_PROJECTIONS
from projections.runtime import projectors_caught_up
from projections.stats import sum_stats

log = logging.getLogger(__name__)

RETAINER = "system:retention"
PAGE = 5000
LOCK_NOT_AVAILABLE = "55P03"  # Postgres: lock_timeout expired
_SESSION = (SessionStarted, SessionHeartbeat, SessionEnded)
_DEVICE = (DevicePaired, DeviceTokenIssued, DeviceRevoked)


async def apply_retention(container: Container) -> int:
    """Shred what is older than ``MEDIO_RETENTION_DAYS``; how many events (0 when it is off)."""
    settings = container.settings
    if not settings.retention_days:
        return 0
    now = container.clock.now()
    horizon = now - timedelta(days=settings.retention_days)
    async with projectors_caught_up(container), container.engine.begin() as conn:
        shredded = await _shred(conn, container.keyring, horizon, settings)
    # Read-model rows and archived rows changed outside the projectors: kept answers lapse.
    await models_replaced(container.redis, settings.stream_shards)
    await archive_rewritten(container.redis)
    if shredded:
        ran = RetentionApplied(occurred_at=now, actor=RETAINER, horizon=horizon, events=shredded)
        await container.events.append(RETAINER, ran)
    return shredded


async def _shred(
    conn: AsyncConnection, keyring: Keyring, horizon: datetime, settings: Settings
) -> int:
    doomed: list[int] = []
    carried: dict[int, Envelope] = {}  # stats carried over by earlier runs
    sessions: dict[int, list[tuple[int, Envelope]]] = defaultdict(list)
    ended: set[int] = set()
    paired: dict[int, list[tuple[int, Envelope]]] = defaultdict(list)
    revoked: set[int] = set()
    for_ledger: list[tuple[int, int, int]] = []  # (shard, entry ms, entry seq) of ledger rows
    async for position, envelope in _older(conn, keyring, horizon):
        event = envelope.event
        if isinstance(event, _SESSION):
            sessions[event.session_id].append((position, envelope))
            if isinstance(event, SessionEnded):
                ended.add(event.session_id)
        elif isinstance(event, _DEVICE):
            paired[event.device_id].append((position, envelope))
            if isinstance(event, DeviceRevoked):
                revoked.add(event.device_id)
        elif isinstance(event, StatsCarried):
            carried[position] = envelope
        else:
            doomed.append(position)
            if entry_of(event) is not None:
                for_ledger.append((envelope.shard, *stream_id_key(envelope.stream_id)))
    finished = [envelope for sid in ended for _, envelope in sessions[sid]]
    doomed += [position for sid in ended for position, _ in sessions[sid]]
    doomed += [position for did in revoked for position, _ in paired[did]]
    for_ledger += [
        (e.shard, *stream_id_key(e.stream_id)) for e in finished if entry_of(e.event) is not None
    ]
    droppable = await _droppable(conn, horizon, set(doomed))
    recarried = [envelope for p, envelope in carried.items() if _within(droppable, p)]
    await _carry_over(conn, keyring, finished + recarried, horizon, settings)
    await _blank(conn, [p for p in doomed if not _within(droppable, p)])
    ids = sorted(ended)
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        await conn.execute(watch_sessions.delete().where(watch_sessions.c.session_id.in_(chunk)))
    gone = sorted(revoked)
    for start in range(0, len(gone), PAGE):
        await conn.execute(
            devices.delete().where(devices.c.device_id.in_(gone[start : start + PAGE]))
        )
    key = sa.tuple_(day_ledger.c.shard, day_ledger.c.entry_ms, day_ledger.c.entry_seq)
    for start in range(0, len(for_ledger), PAGE):
        await conn.execute(day_ledger.delete().where(key.in_(for_ledger[start : start + PAGE])))
    dropped = []
    for partition in droppable:
        try:
            async with conn.begin_nested():
                await drop_partition(conn, partition)
            dropped.append(partition.name)
        except sa.exc.DBAPIError as exc:
            if _sqlstate(exc) != LOCK_NOT_AVAILABLE:
                raise
            # readers held it past the lock timeout
            log.warning("archive partition %s kept, its rows shredded: %s", partition.name, exc)
            inside = [p for p in [*doomed, *carried] if _within([partition], p)]
            await _blank(conn, inside)  # its carried stats were carried again: blanked too
    if dropped:
        log.info("retention dropped archive partitions %s", dropped)
    return len(doomed)


async def _blank(conn: AsyncConnection, positions: list[int]) -> None:
    """Shred the rows at ``positions``: they keep their place, type and time."""
    for start in range(0, len(positions), PAGE):
        chunk = positions[start : start + PAGE]
        await conn.execute(
            events.update().where(events.c.position.in_(chunk)).values(data="", actor="")
        )


def _sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return None if code is None else str(code)


def _within(found: list[Partition], position: int) -> bool:
    return any(p.lower <= position < p.upper for p in found)


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


async def _droppable(conn: AsyncConnection, horizon: datetime, doomed: set[int]) -> list[Partition]:
    """The archive partitions (none on SQLite) that a replay no longer needs once ``doomed``
    is shredded: below the newest one, every row older than ``horizon``, and every row a
    projection other than the archive reads either unreadable already or in ``doomed``."""
    found = await partitions(conn)
    if not found:
        return []
    head = int(await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0)
    needed = _needed_types()
    droppable = []
    for partition in found:
        if partition.upper > head:  # holds the newest row, or is still to be filled
            break
        table = events.to_metadata(sa.MetaData(), name=partition.name)
        newest = await conn.scalar(sa.select(sa.func.max(table.c.occurred_at)))
        if newest is not None and newest >= horizon:
            continue
        kept = _readable(table) & (table.c.type != StatsCarried.__struct_config__.tag)
        if needed is not None:
            kept = kept & table.c.type.in_(sorted(needed))
        if await _all_doomed(conn, table, kept, doomed):
            droppable.append(partition)
    return droppable


async def _all_doomed(
    conn: AsyncConnection, table: sa.Table, kept: sa.ColumnElement[bool], doomed: set[int]
) -> bool:
    after = -1
    while True:
        query = sa.select(table.c.position).where(kept, table.c.position > after)
        rows = (await conn.execute(query.order_by(table.c.position).limit(PAGE))).scalars().all()
        if any(position not in doomed for position in rows):
            return False
        if len(rows) < PAGE:
            return True
        after = rows[-1]
