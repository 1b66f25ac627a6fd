"""What the two resume read models share: entries per user, listed through a per-user index.

``projections.resume`` (one position per title) and ``projections.series_resume`` (one per
series) keep the same bookkeeping around their own keys, under their ``name``:

* ``{name}-index:{clerkId}``: the user's entries (titles, series) scored by ``updatedAt`` ms,
  negated for a tombstone (finished or deleted);
* ``{name}-version:{shard}:{clerkId}``: the stream id of the user's last event
  (``adapters.list_cache``);
* ``{name}-users``: users with an index, scored by their newest event, so ``dump``,
  ``clear`` and ``forget`` reach everything without ``SCAN``.

A subclass says which events it reads (``events``) and which keys hold its entries
(``entry_names``); this class dumps, clears and forgets the lot, and appends the index moves,
pruning and version notes of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, ClassVar

from redis.asyncio import Redis

from adapters.eventlog import shard_for
from projections.base import Commands, Envelope, RedisProjection
from projections.redis_commands import (
    UserEvent,
    forget_users,
    indexes_of_users,
    list_version_key,
    queue_list_versions,
    queue_user_pruning,
    text,
    unlink_all,
    values_with_expiry,
)

CHUNK = 500

Entry = tuple[str, str]  # (clerkId, the entry's id: a tmdbId or a seriesId)


def user_index_key(prefix: str, clerk_id: str) -> str:
    """The user's entries, scored by ``updatedAt`` ms (negative: finished or deleted)."""
    return f"{prefix}-index:{clerk_id}"


def ids_by_user(events: Iterable[UserEvent], id_of: Callable[[Any], str]) -> dict[str, list[str]]:
    """The entry ids of ``events`` per user, each once, in the order they first appear."""
    wanted: dict[str, list[str]] = {}
    for event in events:
        ids = wanted.setdefault(event.clerk_id, [])
        if id_of(event) not in ids:
            ids.append(id_of(event))
    return wanted


class UserIndexProjection(RedisProjection):
    """A per-user read model listed through ``{name}-index:{clerkId}``."""

    events: ClassVar[tuple[type[UserEvent], ...]]  # the events it applies

    @property
    def users_key(self) -> str:
        return self.key(f"{self.name}-users")

    def index_of(self, clerk_id: str) -> str:
        return self.key(user_index_key(self.name, clerk_id))

    def version_of(self, clerk_id: str, shard: int | None = None) -> str:
        if shard is None:
            shard = shard_for(clerk_id, self.settings.stream_shards)
        return self.key(list_version_key(self.name, clerk_id, shard))

    def batch_events(self, batch: Iterable[Envelope]) -> list[Any]:
        """The events of ``batch`` this projection applies, in order."""
        return [e.event for e in batch if isinstance(e.event, self.events)]

    async def entry_names(self, redis: Redis, entries: Sequence[Entry]) -> list[str]:
        """The unprefixed names of the keys that may hold ``entries``."""
        raise NotImplementedError

    def queue_moves(self, commands: Commands, moves: dict[str, list[Any]]) -> None:
        """Append each user's index moves (``score, member, ...``) as one ``ZADD``."""
        for clerk_id, members in moves.items():
            commands.append(("ZADD", self.index_of(clerk_id), *members))

    def queue_users(
        self, commands: Commands, batch: Sequence[Envelope], newest: dict[str, float]
    ) -> None:
        """Append the pruning of the users' indexes and their list versions (user -> newest
        event ms of the batch)."""
        queue_user_pruning(commands, self.users_key, self.index_of, newest)
        queue_list_versions(commands, batch, self.events, self.version_of, newest)

    async def _indexes(self, redis: Redis) -> list[tuple[str, list[tuple[str, float]]]]:
        """Every user with an index and the index's members, found through the user list."""
        return await indexes_of_users(redis, self.users_key, self.index_of, CHUNK)

    async def dump(self, redis: Redis) -> dict[str, Any]:
        """Indexes and live keys by their unprefixed names, with each key's expiry instant."""
        state: dict[str, Any] = {}
        live: list[Entry] = []
        for clerk_id, members in await self._indexes(redis):
            if members:
                state[user_index_key(self.name, clerk_id)] = dict(members)
            live.extend((clerk_id, member) for member, score in members if score > 0)
        names = await self.entry_names(redis, live)
        stored = await values_with_expiry(redis, [self.key(n) for n in names])
        for name, (value, expiry) in zip(names, stored, strict=True):
            if value is not None:
                state[name] = [text(value), expiry]
        return state

    async def clear(self, redis: Redis) -> None:
        """Delete every indexed entry's keys, every index and the user list.

        A replay clears before it rebuilds, with the projectors paused, so the keys are
        unlinked in chunks on one pipeline rather than a round trip per chunk (``unlink_all``);
        the user list goes last, so a clear that fails part way is finished by the next one.
        """
        keys: list[str] = []
        entries: list[Entry] = []
        for clerk_id, members in await self._indexes(redis):
            keys += [self.index_of(clerk_id), self.version_of(clerk_id)]
            entries.extend((clerk_id, member) for member, _ in members)
        keys += [self.key(name) for name in await self.entry_names(redis, entries)]
        await unlink_all(redis, keys, self.users_key, CHUNK)

    async def forget(
        self, redis: Redis, clerk_ids: Collection[str], profile_ids: Collection[int]
    ) -> None:
        async def keys_of(clerk_id: str, ids: list[str]) -> list[str]:
            names = await self.entry_names(redis, [(clerk_id, i) for i in ids])
            return [self.version_of(clerk_id), *[self.key(n) for n in names]]

        indexes = {c: self.index_of(c) for c in clerk_ids}
        await forget_users(redis, self.users_key, indexes, keys_of, CHUNK)
