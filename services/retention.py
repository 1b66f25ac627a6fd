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

The horizon is at least 31 days (``MIN_RETENTION_DAYS``): by then a shredded save's resume key
and a shredded session's Redis state have expired, so the Redis read models need no carry-over.
Stats carried over stay until the child or the family is erased.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.container import Container
from adapters.keyring import ERASED_KEY, Keyring
from adapters.tables import day_ledger, devices, events, watch_sessions
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
from projections.base import Envelope, stream_id_key
from projections.ledger import entry_of
from projections.runtime import projectors_caught_up
from projections.stats import sum_stats

RETAINER = "system:retention"
PAGE = 5000
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
        shredded = await _shred(conn, container.keyring, horizon)
    if shredded:
        ran = RetentionApplied(occurred_at=now, actor=RETAINER, horizon=horizon, events=shredded)
        await container.events.append(RETAINER, ran)
    return shredded


async def _shred(conn: AsyncConnection, keyring: Keyring, horizon: datetime) -> int:
    doomed: list[int] = []
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
        elif not isinstance(event, StatsCarried):
            doomed.append(position)
            if entry_of(event) is not None:
                for_ledger.append((envelope.shard, *stream_id_key(envelope.stream_id)))
    finished = [envelope for sid in ended for _, envelope in sessions[sid]]
    doomed += [position for sid in ended for position, _ in sessions[sid]]
    doomed += [position for did in revoked for position, _ in paired[did]]
    for_ledger += [
        (e.shard, *stream_id_key(e.stream_id)) for e in finished if entry_of(e.event) is not None
    ]
    await _carry_over(conn, keyring, finished, horizon)
    for start in range(0, len(doomed), PAGE):
        chunk = doomed[start : start + PAGE]
        await conn.execute(
            events.update().where(events.c.position.in_(chunk)).values(data="", actor="")
        )
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
    conn: AsyncConnection, keyring: Keyring, finished: list[Envelope], horizon: datetime
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
