"""The event log: Redis Streams, one per shard, partitioned by the key that needs ordering.

Two ways to append:

* ``append`` for facts that depend on no stored state (a resume position): one ``XADD``.
* ``decide`` for commands that depend on current state (a heartbeat needs the session's last
  beat). The state keys are watched, the pure decision runs on what was read, and the new
  state and the events are written in one ``MULTI``; a concurrent change retries the whole
  decision, so no event is appended from stale state and no state changes without its event.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from adapters.autopipeline import AutoPipeline
from adapters.msgpack import UNPACK_COMMANDS_LUA, pack_commands
from adapters.scripts import Script
from domain.codec import encode
from domain.events import AnyEvent

R = TypeVar("R", covariant=True)  # a Decision[X] is a Decision[X | Y]

STREAM_PREFIX = "medio:events"
WRITTEN_PREFIX = "medio:written"
WRITTEN_TTL_MS = 60_000  # longer than any read waits for a projection (services.read_your_writes)
MAX_DECIDE_ATTEMPTS = 50


def stream_name(shard: int) -> str:
    """The stream of one shard; the hash tag keeps each shard on one Redis Cluster slot."""
    return f"{STREAM_PREFIX}:{{{shard}}}"


def written_key(key: str, shard: int) -> str:
    """Where the last entry appended for ``key`` by a marked append is noted (same slot)."""
    return f"{WRITTEN_PREFIX}:{{{shard}}}:{key}"


def shard_for(key: str, shards: int) -> int:
    """Stable shard of an ordering key (profile id for sessions, user id for progress)."""
    return zlib.crc32(key.encode()) % shards if shards > 1 else 0


def entry_fields(event: AnyEvent) -> dict[str, bytes | str | int]:
    """The stream entry of an event: type ``t``, version ``v``, JSON body ``d``."""
    name, version, data = encode(event)
    return {"t": name, "v": version, "d": data}


@dataclass(frozen=True)
class Decision(Generic[R]):
    """What a command decided: events to append, state to write (``None`` deletes), a result."""

    result: R
    events: Sequence[AnyEvent] = ()
    writes: Mapping[str, bytes | str | None] = field(default_factory=dict)
    ttl_seconds: int | None = None
    # Sorted-set members to add with a score (``None`` removes): indexes of the state above,
    # e.g. active sessions by last heartbeat, kept in step with it in the same MULTI.
    index_scores: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    # Keys written with a TTL of their own, ``key -> (value, seconds)``: records that outlive
    # or expire before the state above, e.g. an idempotency record (``services.idempotency``).
    records: Mapping[str, tuple[bytes | str, int]] = field(default_factory=dict)


class ConcurrentUpdate(RuntimeError):
    """The state kept changing under a command; the client may retry."""


class EventLog:
    """Appends events to the sharded streams."""

    def __init__(self, redis: Redis, shards: int = 1, pipeline: AutoPipeline | None = None) -> None:
        self.redis = redis
        self.shards = shards
        self.pipeline = pipeline or AutoPipeline(redis)

    def shard_of(self, key: str) -> int:
        """The shard of an ordering key: its stream's, and the hash tag of its keys."""
        return shard_for(key, self.shards)

    def stream_for(self, key: str) -> str:
        return stream_name(shard_for(key, self.shards))

    async def append(self, key: str, event: AnyEvent, *, note_written: bool = False) -> str:
        """Append one state-free event in the stream of ``key``; returns its entry id.

        ``note_written``: also note the entry id as ``key``'s last write, in the same atomic
        step, so that ``key``'s reads can wait for the projections to pass it
        (``services.read_your_writes``). Appends from concurrent requests share one round trip
        (see ``adapters.autopipeline``).
        """
        name, version, data = encode(event)
        shard = shard_for(key, self.shards)
        if note_written:
            keys = [stream_name(shard), written_key(key, shard)]
            entry_id = await self.pipeline.run(
                APPEND_NOTED, keys, name, version, data, WRITTEN_TTL_MS
            )
        else:
            entry_id = await self.pipeline.execute(
                "XADD", stream_name(shard), "*", "t", name, "v", version, "d", data
            )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def decide(
        self,
        key: str,
        state_keys: Sequence[str],
        decide: Callable[[list[bytes | None]], Decision[R]],
    ) -> R:
        """Run ``decide`` on the current state and commit its state and events atomically.

        Optimistic, like ``WATCH``/``MULTI`` but in two shared round trips: read the state
        (``MGET``), decide in Python, then one script writes state, indexes and events only if
        every state key still holds what was read; otherwise decide again on fresh state.
        """
        stream = self.stream_for(key)
        for _ in range(MAX_DECIDE_ATTEMPTS):
            current: list[bytes | None] = (
                list(await self.pipeline.execute("MGET", *state_keys)) if state_keys else []
            )
            decision = decide(current)
            expected = [b"" if value is None else b"=" + value for value in current]
            commands = _commands(stream, decision)
            committed = await self.pipeline.run(
                COMPARE_AND_APPEND, state_keys, *expected, pack_commands(commands)
            )
            if committed:
                return decision.result
        raise ConcurrentUpdate(f"state of {key} changed {MAX_DECIDE_ATTEMPTS} times in a row")


# XADD, and the new entry's id noted as the key's last write (KEYS: stream, note).
APPEND_NOTED = Script("""
local id = redis.call('XADD', KEYS[1], '*', 't', ARGV[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('SET', KEYS[2], id, 'PX', ARGV[4])
return id
""")

# Atomic compare-and-append. KEYS: the state keys read; ARGV[i]: "=" .. the value read, or ""
# for a missing key; ARGV[#KEYS + 1]: the writes and XADDs, MessagePack-packed. The decision
# itself was made in Python; this only refuses to apply it on state that has changed since.
COMPARE_AND_APPEND = Script(
    UNPACK_COMMANDS_LUA
    + """
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if (value and ('=' .. value) or '') ~= ARGV[i] then return 0 end
end
for _, command in ipairs(unpack_commands(ARGV[#KEYS + 1])) do
  redis.call(unpack(command))
end
return 1
""",
    gated=True,
)


def _commands(stream: str, decision: Decision[Any]) -> list[tuple[Any, ...]]:
    """The Redis commands that carry out ``decision``."""
    commands: list[tuple[Any, ...]] = []
    for state_key, value in decision.writes.items():
        if value is None:
            commands.append(("DEL", state_key))
        elif decision.ttl_seconds is not None:
            commands.append(("SET", state_key, value, "EX", decision.ttl_seconds))
        else:
            commands.append(("SET", state_key, value))
    for index_key, members in decision.index_scores.items():
        for member, score in members.items():
            if score is None:
                commands.append(("ZREM", index_key, member))
            else:
                commands.append(("ZADD", index_key, score, member))
    for record_key, (value, seconds) in decision.records.items():
        commands.append(("SET", record_key, value, "EX", seconds))
    for event in decision.events:
        name, version, data = encode(event)
        commands.append(("XADD", stream, "*", "t", name, "v", version, "d", data))
    return commands
