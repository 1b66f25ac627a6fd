"""Autopipelining: commands issued concurrently by many requests share one round trip.

At ingest rates each request sends one or two small commands (a rate-limit count, an
``XADD``). Sent one by one, redis-py spends far more CPU per command than the command costs
Redis; queued for one event-loop tick and written as one pipeline, the per-command cost drops
several-fold. Order within a batch is the order of issue. Not transactional: each command is
atomic on its own, which is all these callers need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.cluster import expand, is_cluster
from adapters.scripts import Script

Command = tuple[Any, ...]


class AutoPipeline:
    """Queue ``execute(*args)`` calls; flush them together on the next loop iteration."""

    def __init__(self, redis: Redis, timeout: float | None = None) -> None:
        """``timeout``: the deadline of a whole round trip. A client built without a socket
        timeout and given one here saves two timers per command (redis-py's own deadlines
        are per reply and, on a send, a task each): measured, a fifth of a heartbeat's
        store work."""
        self.redis = redis
        self.timeout = timeout
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
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
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)  # keep a reference until done (asyncio holds tasks weakly)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._round_trip([args for args, _ in batch])
        except BaseException as exc:  # Redis away, cancelled: every caller learns it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        if is_cluster(self.redis):
            return await self._cluster_round_trip(commands)
        pool = self.redis.connection_pool
        connection: AbstractConnection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]
                # Retried on a lost connection as redis-py retries its own pipelines.
                replies: list[Any] = await connection.retry.call_with_retry(
                    lambda: _exchange(connection, commands),
                    lambda _error: connection.disconnect(),
                )
            return replies
        except TimeoutError:  # replies may still come: the connection is no use any more
            if connection is not None:
                await connection.disconnect(nowait=True)
            raise RedisTimeoutError(f"Redis did not answer within {self.timeout} s") from None
        finally:
            if connection is not None:
                await pool.release(connection)

    async def _cluster_round_trip(self, commands: list[Command]) -> list[Any]:
        """On a Redis Cluster: each command to its key's master (cross-slot multi-key commands
        split per key), concurrently; redis-py's cluster client routes and follows redirects."""
        flat, join = expand(commands)
        try:
            async with asyncio.timeout(self.timeout):
                replies = await asyncio.gather(
                    *(self.redis.execute_command(*args) for args in flat),  # type: ignore[no-untyped-call]
                    return_exceptions=True,
                )
        except TimeoutError:
            raise RedisTimeoutError(f"Redis did not answer within {self.timeout} s") from None
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, Exception):
                raise reply  # cancelled: every caller learns it
        return join(list(replies))  # an error (a master away, say) only for its own caller

    async def close(self) -> None:
        await self.redis.aclose()


async def _exchange(connection: AbstractConnection, commands: list[Command]) -> list[Any]:
    """Send ``commands`` in one write and read their replies (an error reply as its exception).

    Done here rather than by redis-py's asyncio ``Pipeline``: that one packs every argument in
    Python and wraps each command and reply in its own bookkeeping, which at ingest rates was
    the largest single cost of a request. ``hiredis.pack_command`` (the C packer redis-py's
    synchronous client uses) writes the same bytes; a heartbeat's two commands cost the API
    process 52 -> 42 µs of CPU (in-process, 32 concurrent sessions, real Redis).
    """
    await connection.send_packed_command(
        b"".join([hiredis.pack_command(args) for args in commands]), check_health=False
    )
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:  # the reply was read whole: the next one follows
            replies.append(error)
    return replies
