"""Rename the command side's Redis keys of an older Medio to their shard-tagged names.

Every key a command writes together with its events now carries its shard's hash tag
(``medio:policy:{3}:42``, see ``adapters.session_keys``), on one Redis as on a cluster. A
Redis written by an older Medio holds the same keys untagged; ``medio migrate`` (and ``medio
dev``) renames them once, keeping their values and expiry, and notes the shard of each session
and time request (``shard_route_key``). Keys already tagged are left alone, so running it again
changes nothing. It runs on one Redis (``RENAME`` across slots is refused by a cluster): move an
existing deployment to a cluster after migrating it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import msgspec
from redis.asyncio import Redis

from adapters.eventlog import shard_for
from adapters.session_keys import (
    LEGACY_ACTIVE_INDEX,
    active_index,
    profile_index,
    session_key,
    shard_route_key,
)

_RENAMED: list[tuple[re.Pattern[str], Callable[[re.Match[str], int], str]]] = [
    (re.compile(r"medio:sessions:profile:(\d+)"), lambda m, s: profile_index(int(m[1]), s)),
    (re.compile(r"medio:policy:(\d+)"), lambda m, s: f"medio:policy:{{{s}}}:{m[1]}"),
    (
        re.compile(r"medio:policy:(\d+):used:(.+)"),
        lambda m, s: f"medio:policy:{{{s}}}:{m[1]}:used:{m[2]}",
    ),
    (
        re.compile(r"medio:time-requests:profile:(\d+)"),
        lambda m, s: f"medio:time-requests:profile:{{{s}}}:{m[1]}",
    ),
    (
        re.compile(r"medio:daily-limit:(\d+):(\d{4}-\d{2}-\d{2})"),
        lambda m, s: f"medio:daily-limit:{{{s}}}:{m[1]}:{m[2]}",
    ),
    (
        re.compile(r"medio:daily-limit:(\d+):dates"),
        lambda m, s: f"medio:daily-limit:{{{s}}}:{m[1]}:dates",
    ),
]
# Keys named by an id whose shard is read from the JSON value (its ``profile_id``).
_SESSION = re.compile(r"medio:session:(\d+)")
_REQUEST = re.compile(r"medio:time-request:(\d+)")
_RECORD = re.compile(r"medio:idem:([0-9a-f]{64})")  # a key's answer: kept on shard 0
_PROFILES = "medio:daily-limit:profiles"


class _Owned(msgspec.Struct):
    profile_id: int


_owner = msgspec.json.Decoder(_Owned)


async def rename_legacy_keys(redis: Redis, shards: int) -> int:
    """Rename every untagged command-side key to its tagged name; how many keys moved."""
    moved = 0
    async for raw in redis.scan_iter(match="medio:*", count=1000):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        target = await _target(redis, name, shards)
        if target is not None and await redis.renamenx(name, target):
            moved += 1
    moved += await _split_sets(redis, shards)
    return moved


async def _target(redis: Redis, name: str, shards: int) -> str | None:
    for pattern, rename in _RENAMED:
        match = pattern.fullmatch(name)
        if match:
            return rename(match, shard_for(match[1], shards))
    if match := _RECORD.fullmatch(name):
        return f"medio:idem:{{0}}:{match[1]}"
    for pattern, kind in ((_SESSION, "session"), (_REQUEST, "time-request")):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        value = await redis.get(name)
        if value is None:
            return None
        shard = shard_for(str(_owner.decode(value).profile_id), shards)
        ttl = await redis.ttl(name)
        route = shard_route_key(kind, int(match[1]))
        await redis.set(route, shard, ex=ttl if ttl > 0 else None)
        if kind == "session":
            return session_key(int(match[1]), shard)
        return f"medio:time-request:{{{shard}}}:{match[1]}"
    return None


async def _split_sets(redis: Redis, shards: int) -> int:
    """The one active-session index and the one daily-limit profile list, split per shard."""
    moved = 0
    members = cast(
        list[tuple[bytes, float]], await redis.zrange(LEGACY_ACTIVE_INDEX, 0, -1, withscores=True)
    )
    for member, score in members:
        noted = await redis.get(shard_route_key("session", int(member)))
        if noted is not None:
            await redis.zadd(active_index(int(noted)), {member.decode(): score})
    if members:
        await redis.delete(LEGACY_ACTIVE_INDEX)
        moved += 1
    profiles = await redis.smembers(_PROFILES)
    for profile in profiles:
        text = profile.decode() if isinstance(profile, bytes) else str(profile)
        await redis.sadd(f"medio:daily-limit:{{{shard_for(text, shards)}}}:profiles", text)
    if profiles:
        await redis.delete(_PROFILES)
        moved += 1
    return moved
