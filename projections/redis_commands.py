"""Redis commands of projections: one round trip for a batch's reads, and the helpers that
read replies and append writes to a batch's command list (``projections.base.Commands``).

redis-py spends tens of microseconds of Python per command (argument handling, encoding, reply
callbacks), which for a projection that touches a few thousand keys a batch was most of the
projector's CPU. So:

* ``read_all`` runs a batch's read commands inside one script that receives them as a single
  MessagePack argument (as ``redis_batch`` does for writes) and returns every reply in one
  array: one command for redis-py to send and one reply for hiredis to parse. Replies come
  back in RESP2 form, as a script sees them (scores as text, a missing member as ``None``).
* a batch's writes are plain argument tuples appended to a list, which the projector runs in
  one script (``projections.redis_batch``): no redis-py method runs per command, and numbers
  are sent as their text by the packer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline
from adapters.cluster import expand, group_by_slot, is_cluster, unlink_chunks
from adapters.msgpack import UNPACK_COMMANDS_LUA, pack_commands
from adapters.scripts import Script
from domain.events import ProgressDeleted, ProgressSaved, SeriesProgressDeleted, SeriesProgressSaved
from domain.progress import RESUME_TTL_MS, epoch_ms
from projections.base import Commands, Envelope

T = TypeVar("T")

_READ = Script(
    UNPACK_COMMANDS_LUA
    + """
local replies = {}
for i, command in ipairs(unpack_commands(ARGV[1])) do
  replies[i] = redis.call(unpack(command))
end
return replies
"""
)


async def read_all(redis: Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The replies of read-only ``commands``, in order, from one script call."""
    if not commands:
        return []
    if is_cluster(redis):  # one script per slot (cross-slot multi-key reads split per key)
        flat, join = expand([tuple(c) for c in commands])
        replies: list[Any] = [None] * len(flat)
        for indexes in group_by_slot(flat).values():
            part = [flat[i] for i in indexes]
            found = await _READ.run(redis, [part[0][1]], pack_commands(part))
            for index, reply in zip(indexes, found, strict=True):
                replies[index] = reply
        return join(replies)
    payload = pack_commands(commands)
    return list(await _READ.run(redis, [], payload))


async def read_chunked(
    redis: Redis, commands: Sequence[Sequence[Any]], size: int = 1000
) -> list[Any]:
    """``read_all`` in scripts of ``size`` commands, so a whole-state read (``dump``) never
    holds Redis for long."""
    replies: list[Any] = []
    for start in range(0, len(commands), size):
        replies += await read_all(redis, commands[start : start + size])
    return replies


UserEvent = ProgressSaved | ProgressDeleted | SeriesProgressSaved | SeriesProgressDeleted


def list_version_key(projection: str, clerk_id: str, shard: int) -> str:
    """Where a per-user projection notes the last event that changed the user's list.

    Readers keep a user's list and reuse it while this value is unchanged
    (``adapters.list_cache``). Hash-tagged by the user's shard, like the read-your-writes note and
    the checkpoint it is read with, so the three travel in one ``MGET`` even in a cluster.
    """
    return f"{projection}-version:{{{shard}}}:{clerk_id}"


def queue_list_versions(
    commands: Commands,
    batch: Sequence[Envelope],
    kinds: tuple[type[UserEvent], ...],
    version_key: Callable[[str, int], str],
    changed: dict[str, float],
) -> None:
    """Queue, for each user whose list the batch changed (``changed``: user -> the newest
    ``updatedAt`` ms the user's index now holds), the stream id of that user's last event in
    ``batch`` as the user's list version (``list_version_key``).

    An event skipped as older than what the projection holds changes nothing, so it moves no
    version. The version expires with the user's index (``PXAT`` newest + the resume lifetime),
    so ``clear`` finds it through the user list whenever it exists; a missing version is never
    cached on.
    """
    last: dict[str, Envelope] = {}
    for envelope in batch:
        event = envelope.event
        if isinstance(event, kinds) and event.clerk_id in changed:
            last[event.clerk_id] = envelope
    for clerk_id, envelope in last.items():
        key = version_key(clerk_id, envelope.shard)
        expiry = int(changed[clerk_id] + RESUME_TTL_MS)
        commands.append(("SET", key, envelope.stream_id, "PXAT", expiry))


def text(value: bytes | str) -> str:
    """A reply's string as ``str`` (redis-py gives ``bytes`` unless a client decodes)."""
    return value.decode() if isinstance(value, bytes) else value


def scored_members(reply: list[Any]) -> list[tuple[str, float]]:
    """A ``WITHSCORES`` reply as (member, score) pairs: RESP3 sends pairs, RESP2 (and a
    script) one flat list."""
    if reply and isinstance(reply[0], list):
        return [(text(m), float(s)) for m, s in reply]
    return [(text(m), float(s)) for m, s in zip(reply[::2], reply[1::2], strict=True)]


async def live_members(
    redis: AutoPipeline, index: str, limit: int, now: datetime
) -> tuple[list[str], float | None]:
    """Up to ``limit`` unexpired members of a per-user index scored by ``updatedAt`` ms, newest
    first, and the instant the oldest of them lapses (``None`` when there are none)."""
    oldest_live = f"({epoch_ms(now) - RESUME_TTL_MS}"  # exclusive: at exactly 30 days it lapsed
    reply = await redis.execute(
        "ZREVRANGEBYSCORE", index, "+inf", oldest_live, "WITHSCORES", "LIMIT", 0, limit
    )
    members = scored_members(reply)
    if not members:
        return [], None
    return [m for m, _ in members], members[-1][1] + RESUME_TTL_MS  # the lowest score is last


def as_score(value: bytes | str | float | None) -> float | None:
    """A score as a script returns it (text, or ``None`` for a missing member)."""
    return None if value is None else float(value)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``items`` in slices of ``size``: one round trip each, none holding Redis for long."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def indexes_of_users(
    redis: Redis, users_key: str, index_key: Callable[[str], str], size: int
) -> list[tuple[str, list[tuple[str, float]]]]:
    """Every user listed in the sorted set ``users_key``, with the members and scores of that
    user's index (``index_key(user)``): how a per-user projection is dumped and cleared."""
    stored: list[bytes] = list(await redis.zrange(users_key, 0, -1))  # type: ignore[arg-type]
    users = [text(u) for u in stored]
    found: list[tuple[str, list[tuple[str, float]]]] = []
    for chunk in chunks(users, size):
        commands = [("ZRANGE", index_key(u), 0, -1, "WITHSCORES") for u in chunk]
        for user, flat in zip(chunk, await read_all(redis, commands), strict=True):
            pairs = [(text(m), float(s)) for m, s in zip(flat[::2], flat[1::2], strict=True)]
            found.append((user, pairs))
    return found


def queue_user_pruning(
    commands: Commands, users_key: str, index_of: Callable[[str], str], newest: dict[str, float]
) -> None:
    """Append, for each user of ``newest`` (user -> newest event ms), the removal of index
    members 30 days older than that event and the index's expiry; then the users' place in
    ``users_key`` (only ever moved forward) and the removal of users whose lists all lapsed."""
    for clerk_id, newest_ms in newest.items():
        index = index_of(clerk_id)
        cutoff = newest_ms - RESUME_TTL_MS
        commands.append(("ZREMRANGEBYSCORE", index, -cutoff, cutoff))
        commands.append(("PEXPIREAT", index, int(newest_ms + RESUME_TTL_MS)))
    if newest:
        users = [part for clerk_id, ms in newest.items() for part in (ms, clerk_id)]
        commands.append(("ZADD", users_key, "GT", *users))
        oldest = max(newest.values()) - RESUME_TTL_MS
        commands.append(("ZREMRANGEBYSCORE", users_key, "-inf", oldest))


async def values_with_expiry(redis: Redis, keys: Sequence[str]) -> list[tuple[Any, Any]]:
    """Each key's value and ``PEXPIRETIME``, in order (a missing key: ``None`` and -2), read in
    chunks: how a projection dumps its live keys."""
    replies = await read_chunked(redis, [(cmd, k) for k in keys for cmd in ("GET", "PEXPIRETIME")])
    return list(zip(replies[::2], replies[1::2], strict=True))


async def unlink_all(redis: Redis, keys: Sequence[str], users_key: str, size: int) -> None:
    """Unlink ``keys`` in chunks on one pipeline, then ``users_key``: the list of users goes
    last, so a clear that fails part way is finished by the next one."""
    await unlink_chunks(redis, keys, size)
    await redis.unlink(users_key)


def decoded(
    decoder: msgspec.json.Decoder[T], key: str, raw: Any, log: logging.Logger, what: str
) -> T | None:
    """``raw`` (the value of ``key``) decoded, or ``None`` when absent or unreadable; an
    unreadable value is logged as an ``unreadable {what} value``."""
    if raw is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        log.warning(f"unreadable {what} value", extra={"key": key})
        return None


async def forget_users(
    redis: Redis,
    users_key: str,
    indexes: dict[str, str],
    keys_of: Callable[[str, list[str]], Awaitable[list[str]]],
    size: int,
) -> None:
    """Delete per-user projection state (an erasure): for each user of ``indexes`` (user ->
    index key), the keys ``keys_of(user, members)`` names, then the index and the user's place
    in ``users_key``."""
    for user, index in indexes.items():
        found = await redis.zrange(index, 0, -1)
        members = [text(m) for m in found if isinstance(m, bytes | str)]
        keys = [*await keys_of(user, members), index]
        for chunk in chunks(keys, size):
            await redis.unlink(*chunk)
        await redis.zrem(users_key, user)
