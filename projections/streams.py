"""Reading the event-log streams: consumer group, entries, and server-side range queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from adapters.scripts import Script
from domain.codec import UnknownEvent, decode
from projections.base import Envelope, stream_id_key
from projections.redis_commands import text

GROUP = "projectors"
DEAD_LETTER_STREAM = "medio:dead-letter"
DEAD_LETTER_MAXLEN = 100_000

# What keeps a commit of the entries from ARGV[6] to ARGV[3] after the checkpoint ARGV[2]
# ("(" + id) from being exactly once: an entry between the checkpoint and the batch (the commit
# would pass over it), or one in range pending at another consumer (ARGV[4] is ours).
_FENCE = Script("""
local skipped = redis.call('XRANGE', KEYS[1], ARGV[2], '(' .. ARGV[6], 'COUNT', 1)[1]
if skipped then return {'skipped', skipped[1]} end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5])
for i = 1, #p do
  if p[i][2] ~= ARGV[4] then return {'foreign', p[i][1]} end
end
return false
""")
# XAUTOCLAIM ... JUSTID, keeping the cursor redis-py's reply parser drops.
_CLAIM = Script("""
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3],
                    'COUNT', ARGV[4], 'JUSTID')
return {r[1], #r[2]}
""")
# How many entries lie after ARGV[1] (exclusive), capped at ARGV[2], and the first one's id.
_BEHIND = Script("""
local e = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #e == 0 then return {0, false} end
return {#e, e[1][1]}
""")


class Entry(NamedTuple):
    """One stream entry as read: its id, and the decoded envelope or why there is none."""

    stream_id: str
    key: tuple[int, int]
    envelope: Envelope | None
    fields: dict[bytes, bytes]
    problem: str | None = None  # why it cannot be projected (undecodable); None when deleted


def to_entry(shard: int, raw_id: bytes | str, fields: dict[bytes, bytes] | None) -> Entry:
    """Decode one entry; an unreadable one carries a ``problem`` instead of an envelope."""
    stream_id = text(raw_id)
    key = stream_id_key(stream_id)
    if not fields:  # deleted (trimmed) while pending: nothing left to project
        return Entry(stream_id, key, None, {})
    try:
        name = fields[b"t"].decode()
        version = int(fields[b"v"])
        data = fields[b"d"]
        event = decode(name, version, data)
    except UnknownEvent as exc:
        return Entry(stream_id, key, None, fields, str(exc))
    except (KeyError, ValueError) as exc:
        return Entry(stream_id, key, None, fields, f"malformed entry: {exc!r}")
    return Entry(stream_id, key, Envelope(shard, stream_id, name, version, data, event), fields)


def entries_of(shard: int, reply: Any) -> list[Entry]:
    """The entries of an ``XREADGROUP`` reply (RESP2 list or RESP3 dict shape)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (r[1] for r in reply)
    result: list[Entry] = []
    for items in streams:
        if items and isinstance(items[0], list) and items[0] and isinstance(items[0][0], tuple):
            items = items[0]  # RESP3 legacy wrapping: [[(id, fields), ...]]
        result.extend(to_entry(shard, raw_id, fields) for raw_id, fields in items)
    return result


async def ensure_group(redis: Redis, stream: str) -> None:
    """Create the projectors' consumer group (and the stream) unless it exists."""
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def fence_problem(
    redis: Redis, stream: str, after: str, first: str, upto: str, consumer: str
) -> str | None:
    """Why the entries ``first`` .. ``upto`` may not be committed after the checkpoint
    ``after``, if they may not: an entry between ``after`` and ``first`` that the batch would
    pass over, or an entry in ``(after, upto]`` pending at another consumer."""
    found = await _FENCE.run(redis, [stream], GROUP, "(" + after, upto, consumer, "1000000", first)
    if not found:
        return None
    kind, entry = text(found[0]), text(found[1])
    if kind == "skipped":
        return f"entry {entry} of {stream} lies between the checkpoint and the batch"
    return f"entry {entry} of {stream} is pending at another consumer"


async def claim_all(
    redis: Redis, stream: str, consumer: str, cursor: str, count: int = 1000
) -> tuple[str, int]:
    """Claim up to ``count`` pending entries from ``cursor`` on; the next cursor and how many."""
    next_cursor, claimed = await _CLAIM.run(redis, [stream], GROUP, consumer, cursor, str(count))
    return text(next_cursor), int(claimed)


async def behind(redis: Redis, stream: str, after: str, cap: int) -> tuple[int, str | None]:
    """How many entries follow ``after`` (at most ``cap``) and the id of the first."""
    count, first = await _BEHIND.run(redis, [stream], after, str(cap))
    return int(count), text(first) if first else None


async def dead_letter(redis: Redis, shard: int, entry: Entry, reason: str) -> None:
    """Move an entry that cannot be projected aside, with the reason, for a human to look at."""
    fields: dict[Any, Any] = {b"shard": shard, b"stream_id": entry.stream_id, b"reason": reason}
    for name in (b"t", b"v", b"d"):
        if name in entry.fields:
            fields[name] = entry.fields[name]
    await redis.xadd(DEAD_LETTER_STREAM, fields, maxlen=DEAD_LETTER_MAXLEN, approximate=True)


def stream_ids(entries: Sequence[Entry]) -> list[str]:
    return [entry.stream_id for entry in entries]
