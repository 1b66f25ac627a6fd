"""The resume projection: ``progress.*`` events into the Express-compatible resume keys.

State, all under ``self.key`` so a scratch copy for ``medio replay --verify`` is separate:

* ``resume:{clerkId}:{tmdbId}``: JSON ``{"currentTime", "updatedAt"}`` expiring (``PXAT``)
  30 days after ``updatedAt``. The expiry comes from the event, so a replay recreates the same
  instant, and an event whose expiry has passed creates nothing (Redis drops a past ``PXAT``).
* ``resume-index:{clerkId}``: a sorted set of the user's titles scored by ``updatedAt`` in
  epoch ms, so a list is newest-first and costs O(that user's entries). A finished or deleted
  title stays as a tombstone with the negated score, so a save older than the delete that
  arrives late cannot bring it back. Members 30 days older than the user's newest event are
  pruned; the index itself expires with the user's newest entry.
* ``resume-version:{shard}:{clerkId}``: the stream id of the user's last progress event, which
  API processes check before reusing a list they keep (``adapters.list_cache``).
* ``resume-users``: users with an index, scored by their newest event, so ``dump`` and
  ``clear`` reach everything without ``SCAN``.

A user's index holds at most ``MEDIO_MAX_TITLES_PER_USER`` titles (tombstones included): past
that, the oldest (by ``updatedAt``, then title) leave the index and their keys are deleted, so
one user cannot grow Redis without bound. The same titles are dropped whatever the batches,
since a title's time only grows: a rebuild from the archive ends with the same entries.

Newest wins per title: an event older than what the index holds is skipped, whatever order
the batches arrive in.

Reads (below) use only what this projection wrote, plus resume keys left by the Express
service (``GET`` of one title reads them as they are). A list walks the user's index
(``ZREVRANGEBYSCORE``) and fetches those keys: its cost follows that user's entries, and it
never scans the keyspace. Reads go through the shared ``AutoPipeline``: a read's commands travel
in the same round trip as other requests' and as its own read-your-writes check
(``services.read_your_writes``), and cost a fraction of redis-py's per-command path (measured
in-process: the progress list's CPU per request fell from about 700 to about 300 µs with this
and the route changes in api/progress.py).
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
from domain.events import ProgressDeleted, ProgressSaved
from domain.progress import RESUME_TTL_MS, epoch_ms, resume_value
from domain.timestamps import iso_ms
from projections.base import Commands, Envelope
from projections.redis_commands import (
    as_score,
    decoded,
    list_version_key,
    live_members,
    read_all,
    text,
)
from projections.user_index import Entry, UserIndexProjection, ids_by_user, user_index_key

log = logging.getLogger("medio.resume")

USERS_KEY = "resume-users"

Title = Entry  # (clerkId, tmdbId)


def resume_key(clerk_id: str, tmdb_id: str) -> str:
    """The key the Express service used and player apps' data lives in."""
    return f"resume:{clerk_id}:{tmdb_id}"


def index_key(clerk_id: str) -> str:
    """The user's titles, scored by ``updatedAt`` ms (negative: finished or deleted)."""
    return user_index_key("resume", clerk_id)


def version_key(clerk_id: str, shard: int) -> str:
    """The stream id of the last event that changed the user's list (``adapters.list_cache``)."""
    return list_version_key("resume", clerk_id, shard)


@dataclass
class Known:
    """What the store holds for the titles and users of one batch, read before applying it."""

    scores: dict[Title, float | None] = field(default_factory=dict)
    newest: dict[str, float | None] = field(default_factory=dict)
    # The whole index of each user this batch may take past the cap: title -> score.
    full: dict[str, dict[str, float]] = field(default_factory=dict)


class ResumeProjection(UserIndexProjection):
    """Resume positions per user and title, with the per-user index that lists them."""

    name = "resume"
    handles = frozenset({"progress.saved", "progress.deleted"})
    events = (ProgressSaved, ProgressDeleted)

    async def prepare(self, redis: Redis, batch: Sequence[Envelope]) -> Known:
        """The stored score of every title and the newest event of every user in ``batch``."""
        titles = ids_by_user(self.batch_events(batch), lambda event: event.tmdb_id)
        known = Known()
        if not titles:
            return known
        users = list(titles)
        commands: list[tuple[str, ...]] = [
            ("ZMSCORE", self.index_of(clerk_id), *titles[clerk_id]) for clerk_id in users
        ]
        commands.append(("ZMSCORE", self.users_key, *users))
        commands += [("ZCARD", self.index_of(clerk_id)) for clerk_id in users]
        replies = await read_all(redis, commands)
        per_user, newest, sizes = replies[: len(users)], replies[len(users)], replies[-len(users) :]
        crowded = []
        for clerk_id, scores, size in zip(users, per_user, sizes, strict=True):
            new = 0
            for tmdb_id, score in zip(titles[clerk_id], scores, strict=True):
                known.scores[(clerk_id, tmdb_id)] = as_score(score)
                new += score is None
            if int(size) + new > self.max_titles:
                crowded.append(clerk_id)
        known.newest = {u: as_score(s) for u, s in zip(users, newest, strict=True)}
        if crowded:
            full = [("ZRANGE", self.index_of(u), 0, -1, "WITHSCORES") for u in crowded]
            for clerk_id, flat in zip(crowded, await read_all(redis, full), strict=True):
                pairs = zip(flat[::2], flat[1::2], strict=True)
                known.full[clerk_id] = {text(m): float(s) for m, s in pairs}
        return known

    @property
    def max_titles(self) -> int:
        return self.settings.max_titles_per_user

    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        """Append the batch's key writes, index moves and pruning to ``commands``.

        Only the last applied event of a title in the batch is written (it overwrites the
        others' key and index score anyway), and each user's index moves in one ``ZADD``.
        """
        known: Known = prepared if isinstance(prepared, Known) else Known()
        scores = dict(known.scores)
        newest: dict[str, float] = {}
        last: dict[Title, tuple[ProgressSaved | ProgressDeleted, int]] = {}
        for event in self.batch_events(batch):
            title = (event.clerk_id, event.tmdb_id)
            at_ms = epoch_ms(event.occurred_at)
            stored = scores.get(title)
            if stored is not None and at_ms < abs(stored):
                continue  # a newer save or delete of this title is already applied
            saved = isinstance(event, ProgressSaved) and not event.finished
            scores[title] = at_ms if saved else -at_ms
            last[title] = (event, at_ms)
            previous = newest.get(event.clerk_id) or known.newest.get(event.clerk_id) or 0.0
            newest[event.clerk_id] = max(previous, at_ms)
        moves: dict[str, list[Any]] = {}
        for (clerk_id, tmdb_id), (event, at_ms) in last.items():
            score = self._write(commands, event, at_ms)
            moves.setdefault(clerk_id, []).extend((score, tmdb_id))
        self.queue_moves(commands, moves)
        for clerk_id, index_now in known.full.items():
            self._drop_oldest(commands, clerk_id, index_now, scores)
        self.queue_users(commands, batch, newest)

    def _drop_oldest(
        self,
        commands: Commands,
        clerk_id: str,
        stored: dict[str, float],
        scores: dict[Title, float | None],
    ) -> None:
        """Append the removal of the user's titles beyond the cap: oldest first, ties by title."""
        merged = dict(stored)
        for (user, tmdb_id), score in scores.items():
            if user == clerk_id and score is not None:
                merged[tmdb_id] = score
        if len(merged) <= self.max_titles:
            return
        ranked = sorted(merged.items(), key=lambda item: (abs(item[1]), item[0]), reverse=True)
        dropped = ranked[self.max_titles :]
        commands.append(("ZREM", self.index_of(clerk_id), *[t for t, _ in dropped]))
        live = [self.key(resume_key(clerk_id, t)) for t, score in dropped if score > 0]
        if live:
            commands.append(("DEL", *live))

    def _write(self, commands: Commands, event: ProgressSaved | ProgressDeleted, at_ms: int) -> int:
        """Append the title's key write; returns its new index score."""
        key = self.key(resume_key(event.clerk_id, event.tmdb_id))
        if isinstance(event, ProgressSaved) and not event.finished:
            value = resume_value(event.current_time, iso_ms(event.occurred_at))
            commands.append(("SET", key, value, "PXAT", at_ms + RESUME_TTL_MS))
            return at_ms
        commands.append(("DEL", key))
        return -at_ms

    async def entry_names(self, redis: Redis, entries: Sequence[Title]) -> list[str]:
        """A title's one key."""
        return [resume_key(clerk_id, tmdb_id) for clerk_id, tmdb_id in entries]


# Reads: one title's position, or a user's list, newest first.


class ResumePosition(msgspec.Struct, frozen=True, rename="camel"):
    """A stored position, as the seed's ``GET /api/progress/:clerkId/:tmdbId`` returns it."""

    current_time: float | int
    updated_at: str


class ResumeEntry(msgspec.Struct, frozen=True, rename="camel"):
    """One row of ``GET /api/progress/:clerkId``."""

    tmdb_id: str
    current_time: float | int
    updated_at: str


_position_decoder = msgspec.json.Decoder(ResumePosition)
_positions_decoder = msgspec.json.Decoder(list[ResumePosition | None])


def _position(key: str, raw: Any) -> ResumePosition | None:
    return decoded(_position_decoder, key, raw, log, "resume")


async def read_position(redis: AutoPipeline, clerk_id: str, tmdb_id: str) -> ResumePosition | None:
    """The saved position of one title, or ``None`` (never saved, deleted, finished, expired)."""
    key = resume_key(clerk_id, tmdb_id)
    return _position(key, await redis.execute("GET", key))


async def has_position(redis: AutoPipeline, clerk_id: str, tmdb_id: str) -> bool:
    """Whether there is a position to delete."""
    return bool(await redis.execute("EXISTS", resume_key(clerk_id, tmdb_id)))


async def listed_positions(
    redis: AutoPipeline, clerk_id: str, limit: int, now: datetime
) -> Listed[ResumeEntry]:
    """Up to ``limit`` of the user's positions, newest ``updatedAt`` first, unexpired only, with
    the instant the oldest of them lapses (``adapters.list_cache``)."""
    tmdb_ids, live_until = await live_members(redis, index_key(clerk_id), limit, now)
    if not tmdb_ids:
        return Listed([], None)
    keys = [resume_key(clerk_id, t) for t in tmdb_ids]
    values: list[bytes | None] = await redis.execute("MGET", *keys)
    entries = [
        ResumeEntry(tmdb_id, position.current_time, position.updated_at)
        for tmdb_id, position in zip(tmdb_ids, _positions(keys, values), strict=True)
        if position is not None
    ]
    return Listed(entries, live_until)


def _positions(keys: list[str], values: list[bytes | None]) -> list[ResumePosition | None]:
    """The values of an ``MGET``, decoded in one call as one JSON array (a missing key is
    ``null``); only when some value does not decode, one by one so the rest still answer."""
    try:
        positions = _positions_decoder.decode(
            b"[" + b",".join(b"null" if v is None else v for v in values) + b"]"
        )
    except msgspec.DecodeError:
        positions = []
    if len(positions) == len(values):  # a value holding a list's worth of JSON shifts the rest
        return positions
    return [_position(key, raw) for key, raw in zip(keys, values, strict=True)]
