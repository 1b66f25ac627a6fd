"""Erasing a family or one child (CONTRACT §15): read models deleted, events crypto-shredded.

An erasure runs with the live projectors paused (as ``medio replay`` does), so nothing of the
subject is being projected while it is removed:

1. the subject's running sessions are ended and its paired devices revoked (each an event, as
   a profile deletion always did; a revoked token fails at once), and every shard is drained:
   all of its events are archived (sealed with its keys) and projected;
2. its Redis state goes: resume and series keys with their indexes and list versions, daily
   counters, session states and indexes, its parental policy's keys (policy, counts of the
   day, requests for time), read-your-writes notes and rate-limit counters (any key named
   after the account), and its entries in the event streams and the dead-letter
   stream (the live log must not keep its plaintext until trimming);
3. in one transaction its rows go (sessions, stats, devices, day ledgers, videos, profiles,
   the user) and so
   do its privacy keys: from then on its archived events read as erased, in the feed, in
   exports and in replay. Events archived in the clear before privacy keys existed are blanked;
4. its uploaded files are deleted, and a ``privacy.erased`` event without personal data is
   appended, so the archive records that an erasure happened;
5. a family's erasure is announced to every API process, which forget the deleted user row's
   id (``services.users``); every erasure announces its profiles, whose kept answers (stats,
   day ledgers: ``adapters.answer_cache``) every API process drops.

A rebuild then finds the subject's events unreadable and applies none of them, which is exactly
what the live read models hold after step 3: ``medio replay --verify`` stays clean.

Idempotency records keep the first answer of a retried request for 24 hours under a hash of
the caller and key; they cannot be found by caller and expire by themselves (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.container import Container
from adapters.eventlog import WRITTEN_PREFIX, shard_for, stream_name, written_key
from adapters.keyring import ERASED_KEY, delete_keys
from adapters.media import MediaStore
from adapters.session_keys import active_index, profile_index, session_key, shard_route_key
from adapters.tables import (
    day_ledger,
    events,
    profiles,
    stats_daily,
    stats_totals,
    stats_videos,
    users,
    videos,
    watch_sessions,
)
from adapters.tables import devices as devices_table
from domain.codec import UnknownEvent, decode
from domain.events import ErasedScope, SubjectErased, type_name
from domain.privacy import (
    CHILD_EVENTS,
    FAMILY_EVENTS,
    family_subject,
    profile_subject,
    subject_of,
)
from projections.archive_pages import archive_rewritten
from projections.read_versions import ReadVersions, models_replaced
from projections.registry import REDIS_PROJECTIONS
from projections.runtime import projectors_caught_up
from projections.streams import DEAD_LETTER_STREAM
from services import catalog, devices, policy, sessions
from services.users import announce_erased, announce_profiles_erased

ERASER = "system:privacy"
PAGE = 1000
# Events archived in the clear before privacy keys existed are blanked by type and subject.
_FAMILY_TYPES = tuple(type_name(kind) for kind in FAMILY_EVENTS)
_CHILD_TYPES = tuple(type_name(kind) for kind in CHILD_EVENTS)


@dataclass
class Subject:
    """Everything held about what is being erased, found once its events are all projected."""

    scope: ErasedScope
    clerk_ids: list[str] = field(default_factory=list)  # empty when erasing one child
    user_id: int | None = None
    profile_ids: set[int] = field(default_factory=set)
    session_ids: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> set[str]:
        return {family_subject(c) for c in self.clerk_ids} | {
            profile_subject(p) for p in self.profile_ids
        }


async def erase_family(container: Container, clerk_id: str, user_id: int) -> None:
    """Erase the account ``clerk_id`` (user row ``user_id``) and everything of its children."""

    async def find(conn: AsyncConnection) -> Subject:
        found = Subject("family", clerk_ids=[clerk_id], user_id=user_id)
        owned = await conn.execute(sa.select(profiles.c.id).where(profiles.c.user_id == user_id))
        watched = await conn.execute(
            sa.select(watch_sessions.c.profile_id)
            .where(watch_sessions.c.user_id == user_id)
            .distinct()
        )
        found.profile_ids = {int(p) for (p,) in owned} | {int(p) for (p,) in watched}
        files = await conn.execute(
            sa.select(videos.c.file_path, videos.c.thumbnail_path).where(
                videos.c.user_id == user_id
            )
        )
        found.files = [path for row in files for path in row if path]
        return found

    owned = await _profile_ids(container, user_id)
    await _erase(container, owned, find)
    await announce_erased(container, clerk_id)


async def erase_profile(container: Container, user_id: int, profile_id: int) -> bool:
    """Erase one of ``user_id``'s children; ``False`` when the profile is not theirs."""
    mine = await catalog.get_profile(container, user_id, profile_id)
    if mine is None:
        return False

    async def find(conn: AsyncConnection) -> Subject:
        return Subject("profile", profile_ids={profile_id})

    await _erase(container, [profile_id], find)
    return True


async def _profile_ids(container: Container, user_id: int) -> list[int]:
    async with container.engine.connect() as conn:
        rows = await conn.execute(sa.select(profiles.c.id).where(profiles.c.user_id == user_id))
        return [int(p) for (p,) in rows]


async def _erase(
    container: Container,
    running: Collection[int],
    find: Callable[[AsyncConnection], Awaitable[Subject]],
) -> None:
    settings = container.settings
    for profile_id in running:  # as a deleted profile's sessions and devices always were
        await sessions.end_profile_sessions(
            container, profile_id, "profile_deleted", public_only=False
        )
        await devices.revoke_profile_devices(container, profile_id, ERASER)
    async with projectors_caught_up(container):
        async with container.engine.connect() as conn:
            subject = await find(conn)
            subject.session_ids = await _session_ids(conn, subject)
        await _forget_redis(container, subject)
        await _scrub_streams(container, subject.subjects)
        async with container.engine.begin() as conn:
            keys = await _delete_rows(conn, subject)
        # Again after the commit, and a new generation: an answer kept while the rows were
        # still there lapses, and so does every feed page kept (its events now read as erased).
        await ReadVersions(settings=settings).forget(container.redis, [], subject.profile_ids)
        await models_replaced(container.redis, settings.stream_shards)
        await archive_rewritten(container.redis)
        MediaStore(settings.media_path).remove(*subject.files)
        erased = SubjectErased(
            occurred_at=container.clock.now(), actor=ERASER, scope=subject.scope, keys=keys
        )
        await container.events.append(ERASER, erased)
        await announce_profiles_erased(container, sorted(subject.profile_ids))


async def _session_ids(conn: AsyncConnection, subject: Subject) -> list[int]:
    if not subject.profile_ids:
        return []
    rows = await conn.execute(
        sa.select(watch_sessions.c.session_id).where(
            watch_sessions.c.profile_id.in_(sorted(subject.profile_ids))
        )
    )
    return [int(s) for (s,) in rows]


async def _forget_redis(container: Container, subject: Subject) -> None:
    """Every Redis key and index entry of the subject (the streams: ``_scrub_streams``)."""
    redis = container.redis
    settings = container.settings
    for cls in REDIS_PROJECTIONS:
        await cls(settings=settings).forget(redis, subject.clerk_ids, subject.profile_ids)
    members = [str(s) for s in subject.session_ids]
    shard_of = container.events.shard_of
    async with redis.pipeline(transaction=False) as pipe:  # one key a command: any Redis
        for start in range(0, len(members), PAGE):
            chunk = members[start : start + PAGE]
            routes = [shard_route_key("session", int(s)) for s in chunk]
            shards = await container.pipeline.execute("MGET", *routes)
            for member, route, shard in zip(chunk, routes, shards, strict=True):
                if shard is not None:
                    pipe.zrem(active_index(int(shard)), member)
                    pipe.execute_command("UNLINK", session_key(int(member), int(shard)))
                pipe.execute_command("UNLINK", route)
        for profile_id in subject.profile_ids:
            pipe.execute_command("UNLINK", profile_index(profile_id, shard_of(str(profile_id))))
        for clerk_id in subject.clerk_ids:
            note = written_key(clerk_id, shard_for(clerk_id, settings.stream_shards))
            pipe.execute_command("UNLINK", note)
        await pipe.execute()
    for profile_id in subject.profile_ids:
        await policy.forget_profile(container, profile_id)
    for clerk_id in subject.clerk_ids:
        await _unlink_named_after(container, clerk_id)


async def _unlink_named_after(container: Container, clerk_id: str) -> None:
    """Keys with the account's ``sub`` as a ``:``-separated part of their name (rate-limit
    counters, notes, keys an earlier service left): found with ``SCAN``, since nothing indexes
    them. An erasure is rare; its cost follows the keyspace, as a ``medio progress import``."""
    pattern = "*" + "".join("\\" + c if c in "*?[]\\" else c for c in clerk_id) + "*"
    doomed: list[bytes | str] = []
    async for name in container.redis.scan_iter(match=pattern, count=PAGE):
        text = name.decode() if isinstance(name, bytes) else name
        if f":{clerk_id}:" in f":{text}:" or text.startswith(WRITTEN_PREFIX):
            doomed.append(name)
    for start in range(0, len(doomed), PAGE):
        await container.redis.unlink(*doomed[start : start + PAGE])


async def _scrub_streams(container: Container, subjects: set[str]) -> None:
    """Delete the subjects' entries from every shard's stream and from the dead letters.

    The projectors are paused and drained, so every entry is acknowledged already; what is
    deleted here is only the plaintext copy the log keeps until it is trimmed.
    """
    streams = [stream_name(s) for s in range(container.settings.stream_shards)]
    for stream in [*streams, DEAD_LETTER_STREAM]:
        start = "-"
        while True:
            page = await container.redis.xrange(stream, start, "+", count=PAGE) or []
            ids = [_text(entry_id) for entry_id, _ in page if entry_id is not None]
            doomed = [
                entry_id
                for entry_id, (_, fields) in zip(ids, page, strict=True)
                if fields and _belongs(fields, subjects)
            ]
            if doomed:
                await container.redis.xdel(stream, *doomed)
            if len(page) < PAGE:
                break
            start = "(" + ids[-1]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _belongs(fields: dict[Any, Any], subjects: set[str]) -> bool:
    try:
        event = decode(_text(fields[b"t"]), int(fields[b"v"]), fields[b"d"])
    except (KeyError, ValueError, UnknownEvent):
        return False
    return subject_of(event) in subjects


async def _delete_rows(conn: AsyncConnection, subject: Subject) -> int:
    """Delete the subject's rows and keys in the caller's transaction; the keys deleted."""
    shown = sorted(subject.profile_ids)
    if subject.session_ids:
        for start in range(0, len(subject.session_ids), PAGE):
            chunk = subject.session_ids[start : start + PAGE]
            await conn.execute(
                watch_sessions.delete().where(watch_sessions.c.session_id.in_(chunk))
            )
    if shown:
        for table in (stats_daily, stats_videos, stats_totals, devices_table, day_ledger):
            await conn.execute(table.delete().where(table.c.profile_id.in_(shown)))
        await conn.execute(profiles.delete().where(profiles.c.id.in_(shown)))
    if subject.user_id is not None:
        await conn.execute(videos.delete().where(videos.c.user_id == subject.user_id))
        await conn.execute(users.delete().where(users.c.id == subject.user_id))
    await _blank_unsealed(conn, subject)
    return await delete_keys(conn, subject.subjects)


async def _blank_unsealed(conn: AsyncConnection, subject: Subject) -> None:
    """Erase the subject's events archived in the clear (before privacy keys existed)."""
    # Parsed only where it is JSON: CASE fixes the order a WHERE clause would not.
    parsed = (
        events.c.data if conn.dialect.name == "sqlite" else sa.cast(events.c.data, postgresql.JSON)
    )
    body: Any = sa.type_coerce(sa.case((events.c.key_id.is_(None), parsed)), sa.JSON)
    mine: list[sa.ColumnElement[bool]] = []
    if subject.clerk_ids:
        mine.append(
            events.c.type.in_(_FAMILY_TYPES) & body["clerk_id"].as_string().in_(subject.clerk_ids)
        )
    if subject.profile_ids:
        mine.append(
            events.c.type.in_(_CHILD_TYPES)
            & body["profile_id"].as_integer().in_(sorted(subject.profile_ids))
        )
    if mine:
        await conn.execute(
            events.update()
            .where(events.c.key_id.is_(None), sa.or_(*mine))
            .values(data="", actor="", key_id=ERASED_KEY)
        )
