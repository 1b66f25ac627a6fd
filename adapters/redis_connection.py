"""One multiplexed connection to one Redis: batches written in order, replies matched in order.

``AutoPipeline`` (``adapters.autopipeline``) writes every batch of concurrent commands of an
API or worker process to Redis through one of these. It is an asyncio ``Protocol`` around
``hiredis.Reader`` (the C parser redis-py itself uses): a batch is one ``transport.write``, and
each reply, as the socket delivers it, resolves the future of the command it answers. No task,
pool checkout, stream reader or timer per batch.

Written here because redis-py has no multiplexed connection: through its pool a batch took a
connection out and back, a task, an ``asyncio.timeout`` and an awaited read per reply. With 32
concurrent callers sending three commands each in turn, the API process spent 21 µs of CPU per
command that way and 7 µs this way (``python -m bench.pipeline``, medians of three runs; each
command on its own through redis-py's client, 96 µs). On the heartbeat benchmark it took the
API's CPU per beat from 466 to 416 µs (docs/benchmarks.md "Where a heartbeat's CPU goes").

Still redis-py's own parts where they exist: the client's settings (host, port or socket path,
TLS, credentials, database, client name) are read from its connection pool, connection attempts
follow its retry policy, and error replies become redis-py's exceptions (``NoScriptError``...).

What a multiplexed connection changes for the callers:

* A command's deadline (``timeout``) runs from the write of its batch: when the oldest
  unanswered batch passes it, the connection is closed and every caller waiting on it gets
  ``TimeoutError`` (a late reply could no longer be matched to its command).
* A connection lost fails the callers waiting on it with ``ConnectionError``; their commands
  may or may not have run, so none is sent again. Batches queued while connecting are sent once
  it is up, or fail with the connection's error after the retries.
* Blocking commands (``BLPOP``, ``XREAD BLOCK``) would hold every caller up: they go through
  the client, never through here.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]
Waiter = asyncio.Future[Any]


class RedisProtocol(asyncio.Protocol):
    """The socket's side: replies parsed as they arrive and handed out in order."""

    def __init__(self, encoding: str | None) -> None:
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, encoding=encoding
        )
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[Waiter] = deque()  # one per command written, oldest first
        self.batches: deque[list[float | int]] = deque()  # [written at, replies left]
        self.lost: BaseException | None = None  # why the connection is no use any more

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting, batches = self.waiting, self.batches
        try:
            while (reply := self.reader.gets()) is not False:
                waiter = waiting.popleft()
                batch = batches[0]
                batch[1] -= 1
                if not batch[1]:
                    batches.popleft()
                if waiter.done():  # its caller was cancelled
                    continue
                if isinstance(reply, Exception):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)
        except (InvalidResponse, IndexError) as error:  # the stream no longer lines up
            self.abort(RedisConnectionError(f"Redis sent what was not asked for: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by server'}"))

    def write(self, data: bytes, waiters: Sequence[Waiter], now: float) -> None:
        """Send one batch; its callers learn at once if the connection is already lost (it
        can be, between its opening and the first write)."""
        if self.transport is None or self.lost is not None:
            _fail(waiters, self.lost or RedisConnectionError("Connection to Redis is closed"))
            return
        self.transport.write(data)
        self.waiting.extend(waiters)
        self.batches.append([now, len(waiters)])

    def abort(self, error: BaseException) -> None:
        """Close the connection; every caller still waiting learns ``error``."""
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        waiting, self.waiting = self.waiting, deque()
        self.batches.clear()
        _fail(waiting, error)


class MultiplexedConnection:
    """Batches of commands to the Redis of ``redis`` (a client of one server) over one
    connection, opened on first use and again after it is lost."""

    def __init__(self, redis: Redis, timeout: float | None) -> None:
        self.redis = redis
        self.timeout = timeout
        self._protocol: RedisProtocol | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None  # process and loop
        self._queued: list[tuple[bytes, list[Waiter]]] = []  # batches waiting for a connection
        self._opening: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def send(self, batch: Sequence[tuple[Command, Waiter]]) -> None:
        """Write ``batch`` now if the connection is up, else once it is. A command that cannot
        be packed (an argument Redis cannot take) fails its own caller only."""
        packed: list[bytes] = []
        waiters: list[Waiter] = []
        for args, waiter in batch:
            try:
                packed.append(hiredis.pack_command(args))
            except Exception as error:  # the caller's to see, not the batch's
                waiter.set_exception(error)
                continue
            waiters.append(waiter)
        if not waiters:
            return
        data = b"".join(packed)
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        if protocol is not None and protocol.lost is None and self._owner == (os.getpid(), loop):
            protocol.write(data, waiters, loop.time())
            self._arm(loop)
            return
        if self._opening is not None and self._opening.get_loop() is not loop:
            # Left by an event loop that ended while connecting: its callers are gone with it.
            self._opening, self._queued = None, []
        self._queued.append((data, waiters))
        if self._opening is None:
            self._opening = loop.create_task(self._open_and_send())

    async def _open_and_send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            retry = self.redis.get_retry()
            if retry is None:
                protocol = await self._open()
            else:
                protocol = await retry.call_with_retry(self._open, _ignore)
        except BaseException as error:
            queued, self._queued = self._queued, []
            for _, waiters in queued:
                _fail(waiters, error)
            if not isinstance(error, Exception):
                raise
            return
        finally:
            self._opening = None
        if self._owner is None or self._owner[1] is not loop:
            self._timer = None  # armed on a loop that is gone: it will never fire here
        self._protocol, self._owner = protocol, (os.getpid(), loop)
        queued, self._queued = self._queued, []
        for data, waiters in queued:
            protocol.write(data, waiters, loop.time())
        self._arm(loop)

    async def _open(self) -> RedisProtocol:
        """A new connection with the client's settings, authenticated and on its database."""
        pool = self.redis.connection_pool
        settings: Any = pool.make_connection()  # type: ignore[no-untyped-call]  # its settings
        kwargs = pool.connection_kwargs
        encoding = kwargs.get("encoding", "utf-8") if kwargs.get("decode_responses") else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(settings.socket_connect_timeout):
                if isinstance(settings, UnixDomainSocketConnection):
                    _, protocol = await loop.create_unix_connection(
                        lambda: RedisProtocol(encoding), settings.path
                    )
                else:
                    tls = isinstance(settings, SSLConnection)
                    ssl = settings.ssl_context.get() if tls else None
                    _, protocol = await loop.create_connection(
                        lambda: RedisProtocol(encoding), settings.host, settings.port, ssl=ssl
                    )
                await _hello(protocol, settings, loop)
        except TimeoutError:
            raise RedisTimeoutError("Timeout connecting to Redis") from None
        except OSError as error:
            raise RedisConnectionError(f"Error connecting to Redis: {error}") from error
        return protocol

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have the oldest unanswered batch checked against the deadline (one timer at most)."""
        if self.timeout is not None and self._timer is None:
            self._timer = loop.call_later(self.timeout, self._check)

    def _check(self) -> None:
        self._timer = None
        protocol, loop = self._protocol, asyncio.get_running_loop()
        if protocol is None or not protocol.batches or self.timeout is None:
            return
        if self._owner is None or self._owner[1] is not loop:
            return  # a timer left on a loop whose connection was replaced
        oldest = float(protocol.batches[0][0])
        if loop.time() - oldest >= self.timeout:
            protocol.abort(RedisTimeoutError(f"Redis did not answer within {self.timeout} s"))
            return
        self._timer = loop.call_at(oldest + self.timeout, self._check)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._opening is not None:
            self._opening.cancel()
        if self._protocol is not None:
            if self._owner is not None and self._owner[1] is asyncio.get_running_loop():
                self._protocol.abort(RedisConnectionError("Connection to Redis closed"))
            self._protocol = None


def _fail(waiters: Iterable[Waiter], error: BaseException) -> None:
    """``error`` to every caller of ``waiters`` still waiting (a cancelled one is not)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)


async def _ignore(_error: Exception) -> None:
    """Nothing to undo between connection attempts: a failed one leaves no connection."""


async def _hello(protocol: RedisProtocol, settings: Any, loop: asyncio.AbstractEventLoop) -> None:
    """What redis-py's own connections send first: credentials, database, client name."""
    commands: list[Command] = []
    provider = settings.credential_provider
    if provider is not None:
        commands.append(("AUTH", *await provider.get_credentials_async()))
    elif settings.password:
        user = (settings.username,) if settings.username else ()
        commands.append(("AUTH", *user, settings.password))
    if settings.db:
        commands.append(("SELECT", settings.db))
    if settings.client_name:
        commands.append(("CLIENT", "SETNAME", settings.client_name))
    if not commands:
        return
    waiters = [loop.create_future() for _ in commands]
    protocol.write(b"".join(hiredis.pack_command(c) for c in commands), waiters, loop.time())
    try:
        await asyncio.gather(*waiters)
    except BaseException:
        protocol.abort(RedisConnectionError("Redis refused the connection's set-up"))
        raise
