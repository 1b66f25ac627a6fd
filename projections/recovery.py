"""Redis came back behind the archive: restore the command side from the archive first.

With ``appendfsync everysec`` a host crash can cost Redis its last second of writes while the
projectors had already archived part of that second in SQL (the archive is the truth). Left
alone, the session id sequence hands out archived ids again, archived sessions are missing or
stale (their next beat accrues time already accrued), the daily counters miss archived beats,
and new entries may get ids at or below the archive's checkpoint.

When: once per Redis server run (``projections.redis_generation``), before the first command
of an API process or a projector run on it, and whenever a command script is missing (Redis
restarted under a running process). The check costs ``INFO`` and one ``GET`` when done.

What: with the projectors paused, per shard the Redis projections' checkpoints and the
stream's last id are compared with the archive's checkpoint, and the sequence with the highest
archived session id. A shard that is behind gets:

* the archived events after each Redis projection's checkpoint applied to it, and the
  checkpoint moved to the archive's (daily counters and resume keys as the archive says);
* the state of every session touched by archived events the stream no longer holds (the lost
  ones) rewritten from ``watch_sessions``
  (sessions that the archive ends, end; the token hash and limit are kept from the state
  Redis still had; a session whose start itself was lost has no token hash left, so only its
  parent's token reaches it);
* the stream's last id raised to the archive's (``XSETID``), so new entries sort after it.

The sequence moves past the highest archived session id and every id Redis may have handed
out in writes it lost (``SEQUENCE_GAP``). A restore cut short is done again at the next
check (the check key is written only after it), and doing it again changes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.keyring import Keyring
from adapters.session_keys import (
    SEQUENCE_KEY,
    STATE_TTL_SECONDS,
    active_index,
    profile_index,
    session_key,
    shard_route_key,
)
from adapters.tables import events, profiles, watch_sessions
from domain.codec import UnknownEvent, decode
from domain.events import SessionEnded, SessionHeartbeat, SessionStarted
from domain.sessions import SessionState
from projections.apply import is_transient
from projections.archive import place_of
from projections.base import Envelope, stream_id_key
from projections.checkpoints import (
    ZERO,
    read_redis_checkpoints,
    read_sql_checkpoints,
    redis_checkpoint_key,
)
from projections.locks import projectors_paused
from projections.read_versions import models_replaced
from projections.redis_batch import apply_redis
from projections.redis_commands import text
from projections.redis_generation import CHECKED_KEY, mark_checked, run_id
from projections.registry import REDIS_PROJECTIONS
from projections.streams import ensure_group

log = logging.getLogger(__name__)

ARCHIVE = "archive"
SEQUENCE_GAP = 10_000  # ids a lost second may have handed out (acknowledged, never archived)
LOCK_KEY = "medio:command-side:restoring"
LOCK_TTL_MS = 300_000
WAIT_POLL_SECONDS = 0.05
WAIT_SECONDS = 30.0  # for another process's restore, or for the projectors to hand over
PAGE = 1000
APPLY_CHUNK = 5000

_state_decoder = msgspec.json.Decoder(SessionState)
_state_encoder = msgspec.json.Encoder()
_SESSION_EVENTS = (SessionStarted, SessionHeartbeat, SessionEnded)


@dataclass
class RestoreReport:
    """What a check found and restored (nothing when Redis was not behind)."""

    behind_shards: list[int] = field(default_factory=list)
    sequence: tuple[int, int] | None = None  # (before, after) when it moved
    sessions: int = 0  # session states rewritten from the archive
    replayed: dict[str, int] = field(default_factory=dict)  # archived events per projection

    @property
    def restored(self) -> bool:
        return bool(self.behind_shards or self.sequence)


class CommandSideGate:
    """``AutoPipeline.gate`` of a container: one check at a time per process."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._lock = asyncio.Lock()

    async def __call__(self) -> None:
        async with self._lock:
            await ensure_current(self.container)


class RestoreBusy(RedisTimeoutError):
    """Another process is still restoring (or the projectors did not hand over): retry soon."""


async def ensure_current(container: Container) -> RestoreReport | None:
    """Check Redis against the archive once per Redis server run, restoring if it is behind.

    Returns None when this server run was already checked (here or by another process).
    Raises ``RestoreBusy`` (a Redis timeout: the API answers 503) after ``WAIT_SECONDS``.
    """
    redis = container.redis
    server_run = await run_id(redis)
    if await _checked(redis, server_run):
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    token = secrets.token_hex(8)
    while not await redis.set(LOCK_KEY, token, nx=True, px=LOCK_TTL_MS):
        if await _checked(redis, server_run):  # another process did it
            return None
        if loop.time() > deadline:
            raise RestoreBusy("Redis is being checked against the archive; retry")
        await asyncio.sleep(WAIT_POLL_SECONDS)
    try:
        if await _checked(redis, server_run):
            return None
        settings = container.settings
        try:
            async with projectors_paused(
                redis, settings.stream_shards, settings.projector_lock_ttl_seconds, WAIT_SECONDS
            ):
                report = await restore_if_behind(container)
        except TimeoutError as exc:  # a projector kept its shard
            raise RestoreBusy(str(exc)) from exc
        # Read versions may have gone back with the Redis that restarted: answers the API
        # processes keep lapse (``projections.read_versions``).
        await models_replaced(redis, settings.stream_shards)
        await mark_checked(redis, server_run)
    finally:
        if text(await redis.get(LOCK_KEY) or b"") == token:
            await redis.delete(LOCK_KEY)
    if report.restored:
        log.warning("Redis was behind the archive; restored from it: %s", report)
    return report


async def _checked(redis: Redis, server_run: str) -> bool:
    return text(await redis.get(CHECKED_KEY) or b"") == server_run


async def check_at_start(container: Container) -> None:
    """``ensure_current`` for a starting process; a store that is down is left to the gate."""
    try:
        await ensure_current(container)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("Redis not checked against the archive at start (%r): at first use", exc)


async def restore_if_behind(container: Container) -> RestoreReport:
    """Compare the command side with the archive and restore what is behind (projectors paused)."""
    redis, engine = container.redis, container.engine
    report = RestoreReport()
    async with engine.connect() as conn:
        archived = await read_sql_checkpoints(conn)
        max_session = (
            await conn.execute(sa.select(sa.func.max(watch_sessions.c.session_id)))
        ).scalar() or 0
    for shard in range(container.settings.stream_shards):
        reached = archived.get((ARCHIVE, shard), ZERO)
        if await _restore_shard(container, shard, reached, report):
            report.behind_shards.append(shard)
    sequence = int(await redis.get(SEQUENCE_KEY) or 0)
    if report.behind_shards or sequence < max_session or (sequence and _restarted(archived)):
        moved = max(sequence, max_session) + SEQUENCE_GAP
        await redis.set(SEQUENCE_KEY, moved)
        report.sequence = (sequence, moved)
    return report


def _restarted(archived: dict[tuple[str, int], str]) -> bool:
    """Whether anything was ever archived: a Redis with history restarted (vs a first start)."""
    return any(stream_id_key(p) > (0, 0) for (name, _), p in archived.items() if name == ARCHIVE)


async def _last_id(redis: Redis, shard: int) -> str:
    """The last id the shard's stream handed out (``0-0`` when the stream is gone)."""
    try:
        info = await redis.xinfo_stream(stream_name(shard))
    except ResponseError:  # no such key: Redis lost the stream itself
        return ZERO
    return text(info["last-generated-id"])


async def _restore_shard(
    container: Container, shard: int, reached: str, report: RestoreReport
) -> bool:
    """Bring one shard's command side up to the archive's checkpoint ``reached``; whether it
    was behind.

    Behind means a Redis projection's checkpoint or the stream's last id is older than the
    archive's (with the projectors paused, both have caught up with it otherwise). The stream's
    last id alone would not do: an entry appended since the restart (a save, which waits for
    nothing) moves it past the archive. What Redis lost are the archived entries after the
    projections' checkpoints that its stream no longer holds (nothing after a checkpoint is
    ever trimmed); their sessions get their state from the archive.
    """
    redis = container.redis
    names = [cls.name for cls in REDIS_PROJECTIONS]
    checkpoints = await read_redis_checkpoints(redis, names, shard)
    earliest = min(checkpoints.values(), key=stream_id_key, default=reached)
    last = await _last_id(redis, shard)
    bound = stream_id_key(reached)
    if stream_id_key(earliest) >= bound and stream_id_key(last) >= bound:
        return False
    archived = await archived_after(container.engine, container.keyring, shard, earliest)
    for cls in REDIS_PROJECTIONS:
        projection = cls(settings=container.settings)
        after = stream_id_key(checkpoints[cls.name])
        todo = [
            e
            for e in archived
            if stream_id_key(e.stream_id) > after
            and (not projection.handles or e.type in projection.handles)
        ]
        for start in range(0, len(todo), APPLY_CHUNK):
            await apply_redis(redis, projection, todo[start : start + APPLY_CHUNK])
        report.replayed[cls.name] = report.replayed.get(cls.name, 0) + len(todo)
    await redis.mset({redis_checkpoint_key(name, shard): reached for name in names})
    kept = await _stream_ids(redis, shard, earliest, reached)
    touched = {
        e.event.session_id
        for e in archived
        if isinstance(e.event, _SESSION_EVENTS) and e.stream_id not in kept
    }
    report.sessions += await restore_sessions(container, sorted(touched))
    if stream_id_key(last) < bound:
        await ensure_group(redis, stream_name(shard))
        await redis.execute_command("XSETID", stream_name(shard), reached)  # type: ignore[no-untyped-call]
    return True


async def _stream_ids(redis: Redis, shard: int, after: str, upto: str) -> set[str]:
    """The ids the shard's stream still holds in ``(after, upto]``."""
    found: set[str] = set()
    start = "(" + after
    while True:
        page = await redis.xrange(stream_name(shard), start, upto, count=PAGE) or []
        ids = [text(entry_id) for entry_id, _fields in page if entry_id is not None]
        found.update(ids)
        if len(ids) < PAGE:
            return found
        start = "(" + ids[-1]


async def archived_after(
    engine: AsyncEngine, keyring: Keyring, shard: int, after: str
) -> list[Envelope]:
    """The archived events of ``shard`` after stream id ``after``, in stream order.

    One projector commits a shard's batches in stream order, so positions follow stream ids
    within a shard: reading back from the newest position stops at the first one at or
    before ``after`` (a second's worth after a crash; everything if Redis lost it all).
    """
    bound = stream_id_key(after)
    found: list[Any] = []
    cursor: int | None = None
    columns = [events.c[n] for n in ("position", "stream_id", "type", "version", "data", "key_id")]
    async with engine.connect() as conn:
        while True:
            query = sa.select(*columns).where(events.c.shard == shard)
            if cursor is not None:
                query = query.where(events.c.position < cursor)
            rows = (await conn.execute(query.order_by(events.c.position.desc()).limit(PAGE))).all()
            newer = [row for row in rows if stream_id_key(row.stream_id) > bound]
            found.extend(newer)
            if len(newer) < len(rows) or len(rows) < PAGE:
                break
            cursor = rows[-1].position
        opened = await keyring.open(
            conn, [(row.key_id, place_of(shard, row.stream_id), row.data) for row in found]
        )
    result: list[Envelope] = []
    for (_position, stream_id, name, version, _stored, _key), data in zip(
        reversed(found), reversed(opened), strict=True
    ):
        if data is None:
            continue  # erased: nothing of it is left to restore
        try:
            event = decode(name, version, data)
        except UnknownEvent:
            continue
        result.append(Envelope(shard, stream_id, name, version, data, event))
    return result


async def restore_sessions(container: Container, session_ids: Sequence[int]) -> int:
    """Rewrite the states of ``session_ids`` from ``watch_sessions``; how many were written.

    A session the archive shows ended but Redis no longer knows stays unknown to Redis (its
    row answers for it); one Redis still has, or one still running, gets the archive's state.
    """
    written = 0
    for start in range(0, len(session_ids), PAGE):  # Redis that lost everything: every session
        written += await _restore_some(container, session_ids[start : start + PAGE])
    return written


async def _restore_some(container: Container, session_ids: Sequence[int]) -> int:
    redis = container.redis
    table = watch_sessions
    query = (
        sa.select(table, profiles.c.daily_limit_minutes)
        .join(profiles, profiles.c.id == table.c.profile_id, isouter=True)
        .where(table.c.session_id.in_(list(session_ids)))
    )
    async with container.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    if not rows:
        return 0
    shards = [container.events.shard_of(str(row["profile_id"])) for row in rows]
    keys = [session_key(row["session_id"], s) for row, s in zip(rows, shards, strict=True)]
    held = await container.pipeline.execute("MGET", *keys)  # split per slot on a cluster
    written = 0
    async with redis.pipeline(transaction=False) as pipe:
        for row, shard, value in zip(rows, shards, held, strict=True):
            known = _state_decoder.decode(value) if value else None
            if known is None and row["ended_at"] is not None:
                continue
            state = _state_of(row, known)
            key = session_key(state.session_id, shard)
            pipe.set(key, _state_encoder.encode(state), ex=STATE_TTL_SECONDS)
            route = shard_route_key("session", state.session_id)
            pipe.set(route, shard, ex=STATE_TTL_SECONDS)
            member, by_profile = str(state.session_id), profile_index(state.profile_id, shard)
            if state.active:
                pipe.zadd(active_index(shard), {member: state.last_active_at.timestamp()})
                pipe.zadd(by_profile, {member: state.started_at.timestamp()})
            else:
                pipe.zrem(active_index(shard), member)
                pipe.zrem(by_profile, member)
            written += 1
        await pipe.execute()
    return written


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands times back without their zone; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _state_of(row: Any, known: SessionState | None) -> SessionState:
    """A session's command-side state as the archive has it (what Redis lost filled in)."""
    started_at = _utc(row["started_at"])
    assert started_at is not None
    last_beat = _utc(row["last_heartbeat_at"])
    return SessionState(
        session_id=row["session_id"],
        profile_id=row["profile_id"],
        video_id=row["video_id"],
        user_id=row["user_id"],
        timezone=row["timezone"],
        daily_limit_minutes=(
            known.daily_limit_minutes if known else int(row["daily_limit_minutes"] or 0)
        ),
        started_at=started_at,
        last_active_at=last_beat or started_at,
        last_heartbeat=last_beat,
        watched_ms=row["watched_ms"],
        position=row["position"],
        ended_at=_utc(row["ended_at"]),
        end_reason=row["end_reason"],
        token_hash=known.token_hash if known else "",
        public=row["public"],
    )
