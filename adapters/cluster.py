"""Redis Cluster: which client Medio builds, and how a list of commands runs on one.

On one Redis every command reaches the same server. On a cluster (``MEDIO_REDIS_CLUSTER=true``)
each key lives on the master that owns its hash slot, so:

* a command with one key goes to that key's master: ``Masters`` names it from redis-py's
  ``RedisCluster`` slot map for ``AutoPipeline``'s one write per master, and the client itself
  routes the rest and follows ``MOVED``/``ASK``;
* a multi-key command whose keys are per-key independent (``MGET``, ``DEL``, ``UNLINK``,
  ``EXISTS``) is split into one command per key and its replies joined back (``split``);
* a script or ``MULTI`` must name keys of one slot only. Medio's keys that are written together
  share their shard's hash tag (``{3}``, docs/architecture.md "Redis keys"), so that holds by
  construction; a batch of independent commands (``group_by_slot``) runs as one script per slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import SlotNotCoveredError

Command = tuple[Any, ...]

# Commands whose every argument after the name is a key, each independent of the others.
_PER_KEY = {"MGET": "GET", "DEL": "DEL", "UNLINK": "UNLINK", "EXISTS": "EXISTS", "TOUCH": "TOUCH"}
_SUMMED = {"DEL", "UNLINK", "EXISTS", "TOUCH"}


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def cluster_client(url: str, **options: Any) -> Redis:
    """A cluster client for ``url`` (any node), typed as the ``Redis`` it stands in for: it has
    the same command methods, scripts and non-transactional pipelines."""
    options.pop("health_check_interval", None)
    return cast(Redis, RedisCluster.from_url(url, **options))


_KEEP_CALLBACKS = ("CLUSTER", "COMMAND", "HELLO", "CLIENT", "AUTH", "PING", "READONLY", "INFO")


def raw_replies(redis: Redis) -> Redis:
    """The cluster client's data commands answer as Redis sent them (no reply callbacks), as
    ``AutoPipeline`` reads them from one Redis. Its topology commands keep theirs."""
    callbacks = cast(dict[str, Any], redis.response_callbacks)  # shared with its nodes
    for name in list(callbacks):
        if not name.upper().startswith(_KEEP_CALLBACKS):
            del callbacks[name]
    return redis


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def slot_of(key: Any) -> int:
    return int(key_slot(_bytes(key)))


def command_slot(command: Sequence[Any]) -> int | None:
    """The slot a command's keys are on (its first key's), ``None`` for a keyless one.

    ``EVAL``/``EVALSHA`` name their keys after the key count; every other command Medio sends
    through ``group_by_slot`` or ``split`` has its (first) key right after the name."""
    name = str(command[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return slot_of(command[3]) if int(command[2]) > 0 else None
    return slot_of(command[1]) if len(command) > 1 else None


def split(command: Command) -> tuple[list[Command], Callable[[list[Any]], Any]] | None:
    """A multi-key command as one command per key and how to join their replies, or ``None``
    when the command needs no splitting (one key, or all keys on one slot)."""
    name = str(command[0]).upper()
    per_key = _PER_KEY.get(name)
    if per_key is None or len(command) <= 2:
        return None
    keys = command[1:]
    if len({slot_of(key) for key in keys}) == 1:
        return None
    parts: list[Command] = [(per_key, key) for key in keys]
    if name in _SUMMED:
        return parts, lambda replies: sum(int(reply) for reply in replies)
    return parts, list


def expand(commands: Sequence[Command]) -> tuple[list[Command], Callable[[list[Any]], list[Any]]]:
    """``commands`` with every cross-slot multi-key command split, and how to turn the split
    list's replies back into one reply per original command."""
    flat: list[Command] = []
    joins: list[tuple[int, Callable[[list[Any]], Any] | None]] = []
    for command in commands:
        parts = split(tuple(command))
        if parts is None:
            flat.append(tuple(command))
            joins.append((1, None))
        else:
            flat += parts[0]
            joins.append((len(parts[0]), parts[1]))

    def join(replies: list[Any]) -> list[Any]:
        out: list[Any] = []
        at = 0
        for size, combine in joins:
            chunk = replies[at : at + size]
            at += size
            out.append(joined(chunk, combine))
        return out

    return flat, join


def joined(replies: list[Any], combine: Callable[[list[Any]], Any] | None) -> Any:
    """One command's reply from the replies of its parts (``split``): the only part's reply
    when it was not split, else the first part's error, else the parts combined."""
    if combine is None:
        return replies[0]
    error = next((reply for reply in replies if isinstance(reply, Exception)), None)
    return error if error is not None else combine(replies)


class Masters:
    """The master each command goes to, read from the cluster client's own slot map: the one
    its ``execute_command`` keeps up to date (a ``MOVED`` patches its slot, a failure asks for
    a refresh of the whole topology)."""

    def __init__(self, redis: Redis) -> None:
        self.cluster = cast(RedisCluster, redis)
        self._key_first: dict[Any, bool] = {}  # command name -> its first key follows it

    def of(self, command: Command) -> ClusterNode | None:
        """The master of ``command``'s slot, or ``None`` when the client is to route it itself:
        a command without a key or whose key is elsewhere than right after its name, no slot
        map yet, a slot no master covers."""
        name = command[0]
        key_first = self._key_first.get(name)
        if key_first is None:
            key_first = self._learn(name)
        slot = command_slot(command) if key_first else None
        if slot is None:
            return None
        try:
            return self.cluster.nodes_manager.get_node_from_slot(slot)
        except SlotNotCoveredError:
            return None

    def _learn(self, name: Any) -> bool:
        """Whether ``name``'s first key follows it, from the server's command table (loaded
        with the client's topology; until then, no command is routed here)."""
        upper = str(name).upper()
        if upper in ("EVAL", "EVALSHA"):
            key_first = True
        else:
            info = self.cluster.commands_parser.commands.get(upper.lower())
            if not isinstance(info, dict):
                return False
            key_first = info["first_key_pos"] == 1 and "movablekeys" not in info["flags"]
        self._key_first[name] = key_first
        return key_first


def group_by_slot(commands: Sequence[Command]) -> dict[int, list[int]]:
    """Indexes of ``commands`` (already ``expand``-ed) by the slot of their key, in order."""
    groups: dict[int, list[int]] = {}
    for index, command in enumerate(commands):
        slot = command_slot(command)
        groups.setdefault(-1 if slot is None else slot, []).append(index)
    return groups


async def unlink_chunks(redis: Redis, keys: Sequence[Any], size: int) -> None:
    """Unlink ``keys``, ``size`` a command: on one pipeline on one Redis; on a cluster each
    chunk as one call, which redis-py splits per slot (its cluster pipeline cannot queue a
    multi-key ``UNLINK``)."""
    chunks = [keys[start : start + size] for start in range(0, len(keys), size)]
    if is_cluster(redis):
        for chunk in chunks:
            await redis.unlink(*chunk)
        return
    async with redis.pipeline(transaction=False) as pipe:
        for chunk in chunks:
            pipe.unlink(*chunk)
        await pipe.execute()
