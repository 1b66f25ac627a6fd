"""Daily-limit counters: watched milliseconds per profile per local date, in Redis.

Read at session start (refuse when the day is used up) and on every heartbeat (end the session
when it is), so they live next to the log rather than in SQL. Only the newest few local days
of a profile matter for a limit; older ones are dropped as newer dates arrive, decided from the
events alone so a rebuild ends with the same keys.

Keys (``prefix`` is empty live, ``medio:rebuild:`` for a verify rebuild):

* ``medio:daily-limit:{profile_id}:{YYYY-MM-DD}``: integer milliseconds (``INCRBY``)
* ``medio:daily-limit:{profile_id}:dates``: the dates kept for that profile
* ``medio:daily-limit:profiles``: every profile with counters (for ``dump`` and ``clear``)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis

from domain.events import DayShare, SessionEnded, SessionHeartbeat
from domain.sessions import share_ms
from projections.base import Commands, Envelope, ProfileKeyedProjection
from projections.redis_commands import read_all, read_chunked, text

_WATCHED = (SessionHeartbeat, SessionEnded)  # a tuple: isinstance is faster than on a union

PREFIX = "medio:daily-limit"
KEEP_DAYS = 3  # today in any zone is within a day of UTC; keep a margin for late shares


def counter_key(profile_id: int, local_date: str, shard: int) -> str:
    """The live counter of one profile's local day (what the session commands read), on the
    hash tag of the profile's shard: the commands read it in their atomic step, and the
    projector adds to it in the step that moves its checkpoint (same shard)."""
    return f"{PREFIX}:{{{shard}}}:{profile_id}:{local_date}"


class DailyLimitCounters(ProfileKeyedProjection):
    """``session.heartbeat`` / ``session.ended`` shares summed per profile and local date."""

    name = "daily_limit"
    key_space = PREFIX
    handles = frozenset({"session.heartbeat", "session.ended"})

    def _counter(self, profile_id: int, local_date: str) -> str:
        return self.key(counter_key(profile_id, local_date, self._shard(profile_id)))

    def _dates(self, profile_id: int) -> str:
        return self.key(f"{PREFIX}:{{{self._shard(profile_id)}}}:{profile_id}:dates")

    async def prepare(self, redis: Redis, batch: Sequence[Envelope]) -> dict[int, set[str]]:
        """The dates each profile in the batch already has (to drop the ones now too old)."""
        profile_ids = sorted({pid for pid, _shares in _shares_of(batch)})
        found = await read_all(redis, [("SMEMBERS", self._dates(pid)) for pid in profile_ids])
        return {
            pid: {text(d) for d in dates} for pid, dates in zip(profile_ids, found, strict=True)
        }

    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        """A batch summed per profile and date first: one ``INCRBY`` per counter, one ``SADD``
        per profile's dates and one for the profile list."""
        known: dict[int, set[str]] = prepared or {}
        added: dict[int, dict[str, int]] = {}
        for profile_id, shares in _shares_of(batch):
            by_date = added.get(profile_id)
            if by_date is None:
                by_date = added[profile_id] = {}
            for share in shares:
                by_date[share.local_date] = by_date.get(share.local_date, 0) + share_ms(share)
        if not added:
            return
        self._list_profiles(commands, added)
        for profile_id, by_date in added.items():
            for local_date, ms in by_date.items():
                commands.append(("INCRBY", self._counter(profile_id, local_date), ms))
            commands.append(("SADD", self._dates(profile_id), *by_date))
            dates = known.get(profile_id, set()) | set(by_date)
            cutoff = _cutoff(max(dates))
            old = sorted(d for d in dates if d < cutoff)
            if old:
                commands.append(("DEL", *[self._counter(profile_id, d) for d in old]))
                commands.append(("SREM", self._dates(profile_id), *old))

    async def dump(self, redis: Redis) -> dict[str, Any]:
        counters: dict[str, Any] = {}
        profiles = await self._all_profiles(redis)
        found = await read_chunked(redis, [("SMEMBERS", self._dates(p)) for p in profiles])
        keys = [
            (profile_id, local_date)
            for profile_id, dates in zip(profiles, found, strict=True)
            for local_date in sorted(text(d) for d in dates)
        ]
        values = await read_chunked(redis, [("GET", self._counter(p, d)) for p, d in keys])
        for (profile_id, local_date), value in zip(keys, values, strict=True):
            counters[f"{profile_id}:{local_date}"] = int(value or 0)
        return counters

    async def clear(self, redis: Redis) -> None:
        """Delete every counter, every profile's date set and the profile list.

        A replay clears before it rebuilds, with the projectors paused: the date sets are
        read in a few script calls and the keys unlinked in chunks on one pipeline, since a
        round trip per profile made clearing cost as much as replaying. The profile list goes
        last, so a clear that fails part way is finished by the next one.
        """
        profiles = await self._all_profiles(redis)
        found = await read_chunked(redis, [("SMEMBERS", self._dates(p)) for p in profiles])
        keys = [
            self._counter(profile_id, text(d))
            for profile_id, dates in zip(profiles, found, strict=True)
            for d in dates
        ]
        keys += [self._dates(p) for p in profiles]
        await self._clear_profiles(redis, keys)

    async def forget(
        self, redis: Redis, clerk_ids: Collection[str], profile_ids: Collection[int]
    ) -> None:
        for profile_id in profile_ids:
            dates = await redis.smembers(self._dates(profile_id))
            keys = [self._counter(profile_id, text(d)) for d in dates]
            await self._forget_profile(redis, profile_id, [self._dates(profile_id), *keys])


@lru_cache(maxsize=64)
def _cutoff(latest: str) -> str:
    """The oldest local date kept when ``latest`` is a profile's newest."""
    return (date.fromisoformat(latest) - timedelta(days=KEEP_DAYS)).isoformat()


def _shares_of(batch: Sequence[Envelope]) -> list[tuple[int, tuple[DayShare, ...]]]:
    """``(profile_id, shares)`` of the events in ``batch`` that carry watched time."""
    found = []
    for envelope in batch:
        event = envelope.event
        if isinstance(event, _WATCHED) and event.shares:
            found.append((event.profile_id, event.shares))
    return found
