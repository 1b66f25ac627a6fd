"""One Redis round trip per batch: the projections' commands, the fence and the checkpoints.

Redis projections append their commands to a command list (``projections.base.Commands``);
the runtime runs the list inside one script together with the checkpoint compare-and-set, the
pending-entries fence and the ``XACK``. A script runs atomically, like ``MULTI``, but costs one
reply instead of one per command (redis-py parses each ``QUEUED`` reply of a transaction
separately, which dominated the projector's CPU).
The commands travel as one MessagePack argument (``cmsgpack`` is built into Redis), so
redis-py does not pack thousands of arguments one by one either.

As with ``MULTI``, a command that fails at run time (wrong type) does not undo the others;
the failures are returned so the caller can report them.

A live commit (with checkpoints) is refused with ``RedisNotChecked`` when its script is missing
and Redis has not been checked against the archive since it started (see
``projections.redis_generation``): applying on a Redis that came back behind the archive would
skip what it lost. Un-checkpointed batches (replay, the restore itself) use a script of their
own, so loading theirs never lets a live commit through unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from redis.asyncio import Redis

from adapters.cluster import expand, group_by_slot, is_cluster, slot_of
from adapters.msgpack import UNPACK_COMMANDS_LUA, pack_commands
from adapters.scripts import Script
from projections.base import Command, Commands, Envelope, RedisProjection
from projections.redis_commands import text
from projections.redis_generation import RedisNotChecked, is_checked

# The checkpoints (KEYS) still where the batch was read from, and no other consumer holding its
# entries: ``{0, why}`` otherwise.
_CHECKS_LUA = """
local n = #KEYS
for i = 1, n do
  if (redis.call('GET', KEYS[i]) or '0-0') ~= ARGV[5 + i] then return {0, 'moved'} end
end
if ARGV[3] ~= '' then
  local p = redis.call('XPENDING', ARGV[1], ARGV[2], '(' .. ARGV[5], ARGV[4], 1000000)
  for i = 1, #p do
    if p[i][2] ~= ARGV[3] then return {0, p[i][1]} end
  end
end
"""
_COMMIT = Script(
    UNPACK_COMMANDS_LUA
    + _CHECKS_LUA
    + """
local errors = {}
for _, command in ipairs(unpack_commands(ARGV[6 + n])) do
  local reply = redis.pcall(unpack(command))
  if type(reply) == 'table' and reply.err then errors[#errors + 1] = reply.err end
end
for i = 1, n do redis.call('SET', KEYS[i], ARGV[4]) end
return {1, errors}
""",
    gated=True,
)
# ``_COMMIT``'s checks alone: run first on a Redis Cluster, where a batch's writes to keys of
# other slots (the compatibility keys) cannot join the checkpoint's atomic step.
_CHECK = Script(_CHECKS_LUA + "return {1, {}}\n")
_APPLY = Script(
    UNPACK_COMMANDS_LUA
    + """
local errors = {}
for _, command in ipairs(unpack_commands(ARGV[1])) do
  local reply = redis.pcall(unpack(command))
  if type(reply) == 'table' and reply.err then errors[#errors + 1] = reply.err end
end
return {1, errors}
"""
)


@dataclass(frozen=True)
class Outcome:
    """Whether the batch applied; if not, why (``moved`` or a foreign pending entry id)."""

    applied: bool
    refusal: str | None = None
    errors: tuple[str, ...] = ()


async def run_batch(
    redis: Redis,
    commands: Sequence[Command],
    checkpoints: dict[str, str] | None = None,
    upto: str = "",
    stream: str = "",
    group: str = "",
    consumer: str = "",
    fence_after: str = "0-0",
) -> Outcome:
    """Run ``commands`` atomically; with ``checkpoints`` (key -> expected position), only if
    none moved and no other consumer holds entries in ``(fence_after, upto]``, and then set
    them all to ``upto``.
    """
    errors: list[str] = []
    if is_cluster(redis):
        home, errors = await _apply_elsewhere(
            redis, commands, checkpoints, upto, stream, group, consumer, fence_after
        )
        if home is None:
            return Outcome(False, errors[0])
        commands = home
    payload = pack_commands(commands)
    if not checkpoints:
        reply = await _APPLY.run(redis, commands[0][1:2] if commands else [], payload)
    else:
        argv: list[bytes | str] = [stream, group, consumer, upto, fence_after]
        argv += [*checkpoints.values(), payload]
        gate = partial(_refuse_unchecked, redis)
        reply = await _COMMIT.run(redis, list(checkpoints), *argv, gate=gate)
    status, detail = reply
    if not status:
        return Outcome(False, text(detail))
    return Outcome(True, None, tuple(errors) + tuple(text(e) for e in detail))


async def _apply_elsewhere(
    redis: Redis,
    commands: Sequence[Command],
    checkpoints: dict[str, str] | None,
    upto: str,
    stream: str,
    group: str,
    consumer: str,
    fence_after: str,
) -> tuple[list[Command] | None, list[str]]:
    """On a Redis Cluster: run the batch's commands on keys outside the checkpoints' slot (the
    compatibility keys, ``resume:…``) first, one script per slot, and return the rest, which
    join the checkpoints' atomic step; ``None`` and the refusal if the checks refuse.

    The checks run before anything is written, so a projector that lost its shard writes
    nothing. The writes outside the slot are idempotent and newest-wins (each projection
    decides on what it read and writes absolute values: ``SET``, ``ZADD``, ``DEL``), so a
    batch applied again after a crash between them and the commit leaves the same state."""
    flat, _ = expand(commands)
    home_key = next(iter(checkpoints)) if checkpoints else (flat[0][1] if flat else None)
    if home_key is None:
        return [], []
    if checkpoints:
        argv: list[bytes | str] = [stream, group, consumer, upto, fence_after]
        status, detail = await _CHECK.run(redis, list(checkpoints), *argv, *checkpoints.values())
        if not status:
            return None, [text(detail)]
    groups = group_by_slot(flat)
    own = groups.pop(slot_of(home_key), [])
    errors: list[str] = []
    for indexes in groups.values():
        part = [flat[i] for i in indexes]
        _, failed = await _APPLY.run(redis, [part[0][1]], pack_commands(part))
        errors += [text(e) for e in failed]
    return [flat[i] for i in own], errors


async def _refuse_unchecked(redis: Redis) -> None:
    """The gate of a live commit on a Redis that lacks its script: refused unless checked."""
    if not await is_checked(redis):
        raise RedisNotChecked("Redis restarted; the archive check has not run yet")


async def apply_redis(redis: Redis, projection: RedisProjection, batch: list[Envelope]) -> None:
    """Apply ``batch`` to ``projection`` with no checkpoint (replay, restore from the archive)."""
    prepared = await projection.prepare(redis, batch)
    commands: Commands = []
    projection.apply(commands, batch, prepared)
    outcome = await run_batch(redis, commands)
    if outcome.errors:
        raise RuntimeError(f"{projection.name}: Redis refused: {'; '.join(outcome.errors)}")
