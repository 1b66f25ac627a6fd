"""Read versions: what a kept answer about a profile is checked against on every read.

A parent's reads of a profile (its stats, a day's ledger) are answered from several SQL read
models in several queries. Each API process keeps those answers (``adapters.answer_cache``)
and answers one again only while three values, all on the profile's shard's hash tag and read
in one ``MGET``, are what they were when it was made:

* ``medio:read-version:{s}:<profile_id>``: the stream id of the newest event of the profile that
  a read model of these reads handles (the ``stats``, ``ledger``, ``sessions`` and ``devices``
  projections), written by this projection in the Redis step that follows the batch's SQL
  commit, with its checkpoint. Stream ids never repeat, so a changed read model always changes
  it; it is written after the rows, so an answer kept under a version is never older than it;
* ``medio:read-version:{s}:<profile_id>:row``: a random token the API writes after each change
  of what the read models do not hold: the profile's row (its name, time zone, limits) and its
  family's videos (their titles). Not part of the projection (not dumped, never rebuilt); a
  reader that finds none writes one (``SET NX``) after making its answer, and keeps the answer
  under it only if that write won;
* ``medio:read-version:{s}:generation``: a random token written on every shard around a change
  to the read models that bypasses the projectors (before and after ``medio replay``'s rebuild,
  after a retention run and an erasure) and once per Redis server run (``projections.recovery``:
  a Redis that lost its last writes may hold older versions), so no answer kept before it is
  given after it, even if a version names an entry it named before.

``medio:read-version:{s}:profiles`` lists the profiles with a version (``dump``, ``clear``).
A profile's erasure (``forget``) deletes its keys.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Collection, Sequence
from typing import Any

from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline
from projections.base import Commands, Envelope, ProfileKeyedProjection
from projections.devices import DevicesProjection
from projections.ledger import LedgerProjection
from projections.sessions import SessionsProjection
from projections.stats import StatsProjection

PREFIX = "medio:read-version"


def version_key(profile_id: int, shard: int) -> str:
    return f"{PREFIX}:{{{shard}}}:{profile_id}"


def row_key(profile_id: int, shard: int) -> str:
    return f"{PREFIX}:{{{shard}}}:{profile_id}:row"


def generation_key(shard: int) -> str:
    return f"{PREFIX}:{{{shard}}}:generation"


def read_keys(profile_id: int, shard: int) -> list[str]:
    """The three keys a kept answer about ``profile_id`` is checked against, in one slot."""
    return [version_key(profile_id, shard), row_key(profile_id, shard), generation_key(shard)]


def new_token() -> str:
    return secrets.token_hex(8)


async def rows_changed(
    pipeline: AutoPipeline, profile_ids: Collection[int], shard_of: Callable[[str], int]
) -> None:
    """The profiles' rows (or their family's videos) changed: answers kept about them lapse.
    Called after the change committed, before it is answered."""
    await asyncio.gather(
        *[
            pipeline.send("SET", row_key(profile_id, shard_of(str(profile_id))), new_token())
            for profile_id in profile_ids
        ]
    )


async def models_replaced(redis: Redis, shards: int) -> None:
    """Read models changed outside the projectors: every kept answer lapses."""
    for shard in range(shards):
        await redis.set(generation_key(shard), new_token())


class ReadVersions(ProfileKeyedProjection):
    """Every event a parent's profile reads depend on, as the profile's read version."""

    name = "read_versions"
    key_space = PREFIX
    handles = (
        StatsProjection.handles
        | LedgerProjection.handles
        | SessionsProjection.handles
        | DevicesProjection.handles
    )

    def _version(self, profile_id: int) -> str:
        return self.key(version_key(profile_id, self._shard(profile_id)))

    def apply(self, commands: Commands, batch: Sequence[Envelope], prepared: Any) -> None:
        """One ``SET`` per profile of the batch (its newest event's id), one ``SADD`` per shard."""
        newest: dict[int, str] = {}
        for envelope in batch:
            profile_id = getattr(envelope.event, "profile_id", None)
            if isinstance(profile_id, int):
                newest[profile_id] = envelope.stream_id
        self._list_profiles(commands, newest)
        for profile_id, stream_id in newest.items():
            commands.append(("SET", self._version(profile_id), stream_id))

    async def dump(self, redis: Redis) -> dict[str, Any]:
        """Nothing to compare: a version names the newest live entry of a profile, which a
        rebuild from the archive cannot always name again (events shredded by retention, carried
        totals archived under no live entry). Versions are only compared for equality, and
        every rebuild changes the generation."""
        return {}

    async def clear(self, redis: Redis) -> None:
        profiles = await self._all_profiles(redis)
        await self._clear_profiles(redis, [self._version(p) for p in profiles])

    async def forget(
        self, redis: Redis, clerk_ids: Collection[str], profile_ids: Collection[int]
    ) -> None:
        for profile_id in profile_ids:
            row = self.key(row_key(profile_id, self._shard(profile_id)))
            await self._forget_profile(redis, profile_id, [self._version(profile_id), row])
