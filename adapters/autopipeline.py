"""Autopipelining: commands issued concurrently by many requests share one round trip.

At ingest rates each request sends one or two small commands (a rate-limit count, an
``XADD``). Sent one by one, redis-py spends far more CPU per command than the command costs
Redis; queued for one event-loop tick and written as one pipeline, the per-command cost drops
several-fold. Order within a batch is the order of issue. Not transactional: each command is
atomic on its own, which is all these callers need.

On one Redis every batch is one write on the process's one multiplexed connection
(``adapters.redis_connection``), and each caller is answered as its reply is parsed.

On a Redis Cluster the batch is cut per master: each command goes to the master of its key's
slot in the cluster client's own slot map (``adapters.cluster.Masters``; a cross-slot multi-key
command per key), each master gets one packed write, all at once, and a caller is answered as
soon as the masters of its command have. A command answered with a redirect, or whose reply a
lost connection took, goes through the client's ``execute_command``, which follows it, patches
its slot map or refreshes the topology, and retries; a master that is down fails only its own
callers. Sent each through ``execute_command``, as before, a save cost the API 71-99 % more CPU
than on one Redis; one write per master, 24-38 % (``python -m bench cluster``,
docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.cluster import Masters, is_cluster, joined, split
from adapters.redis_connection import MultiplexedConnection
from adapters.scripts import Script

Command = tuple[Any, ...]


Batch = list[tuple[Command, asyncio.Future[Any]]]


class AutoPipeline:
    """Queue ``execute(*args)`` calls; flush them together on the next loop iteration."""

    def __init__(self, redis: Redis, timeout: float | None = None) -> None:
        """``timeout``: the deadline of a whole round trip. A client built without a socket
        timeout and given one here saves two timers per command (redis-py's own deadlines
        are per reply and, on a send, a task each): measured, a fifth of a heartbeat's
        store work."""
        self.redis = redis
        self.timeout = timeout
        self._pending: Batch = []
        self._masters = Masters(redis) if is_cluster(redis) else None
        self._connection = None if self._masters else MultiplexedConnection(redis, timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        # Run before a ``gated`` script is loaded: a missing script means Redis restarted, and
        # the command side must not act on it before it is checked against the archive.
        self.gate: Callable[[], Awaitable[None]] | None = None

    async def execute(self, *args: Any) -> Any:
        """Run one Redis command (``"XADD", key, "*", ...``) in the next batch; its reply."""
        return await self.send(*args)

    def send(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command for the next batch now; the future of its reply.

        For a caller that sends a command and goes on with other work before awaiting it (no
        task needed to run the two side by side, as ``asyncio.gather`` would create)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return future

    async def run(self, script: Script, keys: Sequence[Any], *args: Any) -> Any:
        """Run ``script`` on ``keys`` and ``args`` in the next batch; its reply (``EVALSHA``,
        its body only when Redis lacks it)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # first use on this server, or after a restart: load it
            if script.gated and self.gate is not None:
                await self.gate()
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if self._connection is not None:  # one Redis: written now, answered as replies come
            self._connection.send(batch)
            return
        task = asyncio.ensure_future(self._cluster_send(batch))
        self._tasks.add(task)  # keep a reference until done (asyncio holds tasks weakly)
        task.add_done_callback(self._tasks.discard)

    async def _cluster_send(self, batch: Batch) -> None:
        """On a Redis Cluster: the batch cut per master (a cross-slot multi-key command per
        key), one packed write to each master, all at once; each caller answered as soon as
        the masters of its command have. A redirect or a lost connection sends the commands it
        concerns through the cluster client, which follows the redirect or refreshes its view
        of the cluster and retries; a master away fails only its own callers."""
        masters_of = cast(Masters, self._masters)
        masters: dict[ClusterNode, list[_Part]] = {}
        rerouted: list[_Part] = []
        for command, future in batch:
            call = _Call(command, future)
            for part in call.parts():
                master = masters_of.of(part[2])
                if master is None:
                    rerouted.append(part)
                else:
                    masters.setdefault(master, []).append(part)
        sends = [self._on_master(master, parts) for master, parts in masters.items()]
        if rerouted:
            sends.append(self._reroute(rerouted))
        try:
            async with asyncio.timeout(self.timeout):
                if len(sends) == 1:
                    await sends[0]  # one master: no task to run it beside others
                else:
                    await asyncio.gather(*sends)
        except TimeoutError:
            _fail(batch, RedisTimeoutError(f"Redis did not answer within {self.timeout} s"))
        except BaseException as exc:  # cancelled: every caller not yet answered learns it
            _fail(batch, exc)

    async def _on_master(self, master: ClusterNode, parts: list[_Part]) -> None:
        """``parts`` in one write to ``master`` (``exchange``)."""
        replies: list[Any] = []
        try:
            connection = master.acquire_connection()
        except RedisConnectionError:  # its pool is full: the cluster client says so
            await self._reroute(parts)
            return
        try:
            await master.disconnect_if_needed(connection)
            await exchange(connection, [command for _, _, command in parts], replies)
        except (RedisConnectionError, RedisTimeoutError):
            # The replies not read are lost with the connection: those commands go the
            # cluster client's way, which tells a master that moved from one that is down.
            await connection.disconnect(nowait=True)
        finally:
            master.release(connection)
        rerouted = parts[len(replies) :]
        for part, reply in zip(parts, replies, strict=False):
            if isinstance(reply, _REDIRECTS):
                rerouted.append(part)
            else:
                part[0].answer(part[1], reply)
        await self._reroute(rerouted)

    async def _reroute(self, parts: list[_Part]) -> None:
        """``parts`` through the cluster client's own routing, each on its own."""
        if not parts:
            return
        replies = await asyncio.gather(
            *(self.redis.execute_command(*command) for _, _, command in parts),  # type: ignore[no-untyped-call]
            return_exceptions=True,
        )
        for (call, index, _), reply in zip(parts, replies, strict=True):
            if isinstance(reply, BaseException) and not isinstance(reply, Exception):
                raise reply  # cancelled: every caller learns it
            call.answer(index, reply)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        await self.redis.aclose()


async def exchange(
    connection: AbstractConnection, commands: list[Command], replies: list[Any] | None = None
) -> list[Any]:
    """Send ``commands`` in one write on a redis-py ``connection`` (a cluster master's) and read
    their replies (an error reply as its exception) into ``replies``: when the connection is
    lost midway, those read so far.

    Done here rather than by redis-py's asyncio ``Pipeline``: that one packs every argument in
    Python and wraps each command and reply in its own bookkeeping, which at ingest rates was
    the largest single cost of a request. ``hiredis.pack_command`` (the C packer redis-py's
    synchronous client uses) writes the same bytes; a heartbeat's two commands cost the API
    process 52 -> 42 µs of CPU (in-process, 32 concurrent sessions, real Redis).
    """
    replies = [] if replies is None else replies
    await connection.send_packed_command(
        b"".join([hiredis.pack_command(args) for args in commands]), check_health=False
    )
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:  # the reply was read whole: the next one follows
            replies.append(error)
    return replies


# A command a master answered with these goes through the cluster client, which follows them.
_REDIRECTS = (AskError, TryAgainError, ClusterDownError)  # AskError: MOVED too

_Part = tuple["_Call", int, Command]  # a caller, which of its parts, the part's command


class _Call:
    """One caller's command on a cluster: its parts (itself, or one per key of a cross-slot
    multi-key command), their replies as they come, and its future."""

    __slots__ = ("combine", "commands", "future", "left", "replies")

    def __init__(self, command: Command, future: asyncio.Future[Any]) -> None:
        cut = split(command)
        self.commands = [command] if cut is None else cut[0]
        self.combine: Callable[[list[Any]], Any] | None = None if cut is None else cut[1]
        self.future = future
        self.replies: list[Any] = [None] * len(self.commands)
        self.left = len(self.commands)

    def parts(self) -> list[_Part]:
        return [(self, index, command) for index, command in enumerate(self.commands)]

    def answer(self, index: int, reply: Any) -> None:
        """The reply of part ``index``; the caller's once every part has one."""
        self.replies[index] = reply
        self.left -= 1
        if self.left or self.future.done():
            return
        reply = joined(self.replies, self.combine)
        if isinstance(reply, Exception):
            self.future.set_exception(reply)
        else:
            self.future.set_result(reply)


def _fail(batch: Batch, error: BaseException) -> None:
    """``error`` to every caller of ``batch`` not answered yet."""
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
