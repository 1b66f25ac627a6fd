"""The series resume projection: ``series_progress.*`` events into the origin's series keys.

The service behind seed 000 kept one resume point per TV series (CONTRACT §4a). State, all
under ``self.key`` so a scratch copy for ``medio replay --verify`` is separate:

* ``series_resume:{clerkId}:{seriesId}:{tmdbId}``: JSON ``{"currentTime", "seriesId",
  "tmdbId", "updatedAt"}`` of the series' current episode, expiring (``PXAT``) 30 days after
  ``updatedAt``; the key name and value are the origin service's. Only the current episode of
  a series has one: saving episode B deletes episode A's key.
* ``series_resume-current:{clerkId}:{seriesId}``: the current episode's ``tmdbId``, with the
  same expiry, so one series is read (and a delete checked) without listing the user's series.
* ``series_resume-index:{clerkId}``: the user's series scored by ``updatedAt`` in epoch ms,
  so a list is newest first and costs O(that user's series). A finished or deleted series
  stays as a tombstone with the negated score, so an older save arriving late cannot bring it
  back. Pruned and expired like ``resume-index`` (see ``projections.resume``).
* ``series_resume-version:{shard}:{clerkId}``: the stream id of the user's last series event,
  which API processes check before reusing a list they keep (``adapters.list_cache``).
* ``series_resume-users``: users with an index, scored by their newest event, for ``dump``
  and ``clear`` without ``SCAN``.

Newest wins per series, whatever order the batches arrive in: an event older than what the
index holds for its series is skipped, and a skipped save of another episode only has its
key deleted (no key but the current episode's may exist).

Reads (below) use only what this projection wrote, plus keys left by the origin service: one
episode is read from its own key, so an origin key is readable before ``medio progress import``
indexed it. A list walks the user's index, then fetches the current episodes and their keys:
three round trips whose size follows that user's series, never the keyspace. Reads go through
the shared ``AutoPipeline`` (as ``projections.resume`` does), so their first command travels
with their read-your-writes check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline
from adapters.list_cache import Listed
from domain.events import SeriesProgressDeleted, SeriesProgressSaved
from domain.progress import RESUME_TTL_MS
from domain.series_progress import (
    Series,
    SeriesEvent,
    SeriesState,
    fold_series_events,
    series_value,
)
from domain.timestamps import iso_ms
from projections.base import Commands, Envelope
from projections.redis_commands import (
    as_score,
    decoded,
    list_version_key,
    live_members,
    read_all,
    read_chunked,
    text,
)
from projections.user_index import UserIndexProjection, ids_by_user, user_index_key

log = logging.getLogger("medio.series_resume")

USERS_KEY = "series_resume-users"


def series_key(clerk_id: str, series_id: str, tmdb_id: str) -> str:
    """The key the origin service used for one episode's resume point."""
    return f"series_resume:{clerk_id}:{series_id}:{tmdb_id}"


def version_key(clerk_id: str, shard: int) -> str:
    """The stream id of the last event that changed the user's list (``adapters.list_cache``)."""
    return list_version_key("series_resume", clerk_id, shard)


def current_key(clerk_id: str, series_id: str) -> str:
    """The ``tmdbId`` of the series' current episode (absent: nothing to resume)."""
    return f"series_resume-current:{clerk_id}:{series_id}"


def index_key(clerk_id: str) -> str:
    """The user's series, scored by ``updatedAt`` ms (negative: finished or deleted)."""
    return user_index_key("series_resume", clerk_id)


@dataclass
class Known:
    """The stored state of the series and users of one batch, read before applying it."""

    series: dict[Series, SeriesState] = field(default_factory=dict)
    newest: dict[str, float | None] = field(default_factory=dict)


class SeriesResumeProjection(UserIndexProjection):
    """One resume point per user and series, with the per-user index that lists them."""

    name = "series_resume"
    handles = frozenset({"series_progress.saved", "series_progress.deleted"})
    events = (SeriesProgressSaved, SeriesProgressDeleted)

    async def prepare(self, redis: Redis, batch: Sequence[Envelope]) -> Known:
        """The index score and current episode of every series in ``batch``, and each of its
        users' newest event."""
        wanted = ids_by_user(self.batch_events(batch), lambda event: event.series_id)
        known = Known()
        if not wanted:
            return known
        users = list(wanted)
        commands: list[tuple[str, ...]] = [("ZMSCORE", self.index_of(u), *wanted[u]) for u in users]
        pairs = [(u, s) for u in users for s in wanted[u]]
        commands += [("GET", self.key(current_key(u, s))) for u, s in pairs]
        commands.append(("ZMSCORE", self.users_key, *users))
        replies = await read_all(redis, commands)
        scores, episodes, newest = replies[: len(users)], replies[len(users) : -1], replies[-1]
        for clerk_id, user_scores in zip(users, scores, strict=True):
            for series_id, score in zip(wanted[clerk_id], user_scores, strict=True):
                known.series[(clerk_id, series_id)] = SeriesState(as_score(score))
        for pair, episode in zip(pairs, episodes, strict=True):
            known.series[pair].episode = None if episode is None else text(episode)
        known.newest = {u: as_score(s) for u, s in zip(users, newest, strict=True)}
        return known

    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        """Append the batch's key writes, index moves and pruning to ``commands``: the rules are
        ``domain.series_progress.fold_series_events``'s; each series is written once."""
        known: Known = prepared if isinstance(prepared, Known) else Known()
        events: list[SeriesEvent] = self.batch_events(batch)
        changes = fold_series_events(known.series, events)
        for (clerk_id, series_id), episodes in changes.removed.items():
            if episodes:
                gone = sorted(self.key(series_key(clerk_id, series_id, e)) for e in episodes)
                commands.append(("DEL", *gone))
        moves: dict[str, list[Any]] = {}
        for pair, (event, at_ms) in changes.written.items():
            moves.setdefault(pair[0], []).extend((self._write(commands, event, at_ms), pair[1]))
        self.queue_moves(commands, moves)
        newest = {
            clerk_id: max(at_ms, known.newest.get(clerk_id) or 0.0)
            for clerk_id, at_ms in changes.newest.items()
        }
        self.queue_users(commands, batch, newest)

    def _write(self, commands: Commands, event: SeriesEvent, at_ms: int) -> int:
        """Append the series' current-episode writes; returns its new index score."""
        pointer = self.key(current_key(event.clerk_id, event.series_id))
        if isinstance(event, SeriesProgressSaved) and not event.finished:
            expiry = at_ms + RESUME_TTL_MS
            key = self.key(series_key(event.clerk_id, event.series_id, event.tmdb_id))
            value = series_value(
                event.series_id, event.tmdb_id, event.current_time, iso_ms(event.occurred_at)
            )
            commands.append(("SET", key, value, "PXAT", expiry))
            commands.append(("SET", pointer, event.tmdb_id, "PXAT", expiry))
            return at_ms
        commands.append(("DEL", pointer))
        return -at_ms

    async def _currents(self, redis: Redis, series: Sequence[Series]) -> list[str | None]:
        """The current episode of each of ``series`` (``None``: none, lapsed or tombstoned)."""
        replies = await read_chunked(redis, [("GET", self.key(current_key(*s))) for s in series])
        return [None if r is None else text(r) for r in replies]

    async def entry_names(self, redis: Redis, entries: Sequence[Series]) -> list[str]:
        """Each series' current-episode pointer, and the key of that episode if there is one."""
        names = [current_key(*s) for s in entries]
        for (clerk_id, series_id), episode in zip(
            entries, await self._currents(redis, entries), strict=True
        ):
            if episode is not None:
                names.append(series_key(clerk_id, series_id, episode))
        return names


# Reads: one series, one episode, or a user's series, newest first.


class SeriesPosition(msgspec.Struct, frozen=True, rename="camel"):
    """The current episode of a series, as the origin's web player reads it."""

    current_time: float | int
    series_id: str
    tmdb_id: str
    updated_at: str


class SeriesEntry(msgspec.Struct, frozen=True, rename="camel"):
    """One row of ``GET /api/progress/series/:clerkId``."""

    series_id: str
    tmdb_id: str
    current_time: float | int
    updated_at: str


class _Stored(msgspec.Struct, frozen=True, rename="camel"):
    """The stored value; its ids are taken from the key (the origin may have stored numbers)."""

    current_time: float | int
    updated_at: str


_stored_decoder = msgspec.json.Decoder(_Stored)


def _stored(key: str, raw: Any) -> _Stored | None:
    return decoded(_stored_decoder, key, raw, log, "series resume")


async def read_episode(
    redis: AutoPipeline, clerk_id: str, series_id: str, tmdb_id: str
) -> SeriesPosition | None:
    """The episode's position if it is its series' current one, else ``None``.

    Only the current episode of a series has a key (the projection deletes the others).
    """
    key = series_key(clerk_id, series_id, tmdb_id)
    stored = _stored(key, await redis.execute("GET", key))
    if stored is None:
        return None
    return SeriesPosition(stored.current_time, series_id, tmdb_id, stored.updated_at)


async def current_episode(redis: AutoPipeline, clerk_id: str, series_id: str) -> str | None:
    """The ``tmdbId`` of the series' current episode, or ``None`` (never saved, deleted,
    finished, expired)."""
    raw = await redis.execute("GET", current_key(clerk_id, series_id))
    return None if raw is None else text(raw)


async def read_series(redis: AutoPipeline, clerk_id: str, series_id: str) -> SeriesPosition | None:
    """The current episode of the series and its position, or ``None``."""
    tmdb_id = await current_episode(redis, clerk_id, series_id)
    if tmdb_id is None:
        return None
    return await read_episode(redis, clerk_id, series_id, tmdb_id)


async def listed_series(
    redis: AutoPipeline, clerk_id: str, limit: int, now: datetime
) -> Listed[SeriesEntry]:
    """Up to ``limit`` of the user's series, newest ``updatedAt`` first, unexpired only, with
    the instant the oldest of them lapses (``adapters.list_cache``)."""
    series_ids, live_until = await live_members(redis, index_key(clerk_id), limit, now)
    if not series_ids:
        return Listed([], None)
    episodes = await redis.execute("MGET", *[current_key(clerk_id, s) for s in series_ids])
    current = [(s, text(e)) for s, e in zip(series_ids, episodes, strict=True) if e is not None]
    if not current:
        return Listed([], live_until)
    keys = [series_key(clerk_id, s, e) for s, e in current]
    entries = []
    for (series_id, tmdb_id), key, raw in zip(
        current, keys, await redis.execute("MGET", *keys), strict=True
    ):
        stored = _stored(key, raw)
        if stored is not None:
            entries.append(SeriesEntry(series_id, tmdb_id, stored.current_time, stored.updated_at))
    return Listed(entries, live_until)
