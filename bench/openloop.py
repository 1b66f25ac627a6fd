"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the replies.

wrk (closed loop) sends the next request when the previous reply arrives, so a slow server
is offered less load and its latency looks better than it is. Here request ``i`` is due at
``start + i / rate``; it goes out on an idle keep-alive connection (a new one is opened while
fewer than ``max_connections`` exist, otherwise it waits in a backlog for the next reply) and
its latency is counted from when it was due, not from when it left.

Requests are pre-built bytes, replies are parsed by httptools and everything happens in
protocol callbacks (no task or future per request), so the generator costs a few tens of
microseconds of CPU per request: on a 2-core machine it must leave the CPU to the server.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

IDLE_REUSE_SECONDS = 3.0  # the API drops keep-alive connections idle for 5 s
LATE_SECONDS = 0.010
TICK_SECONDS = 0.002  # due requests leave together at most this late: fewer wake-ups

Request = Callable[[int], bytes]
OnReply = Callable[[int, int, float], None]  # (index, status, loop time of the reply)


@dataclass
class Outcome:
    """What happened to the requests of one run."""

    planned: int
    rate: float
    first_sent: float = 0.0
    last_sent: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds from due to reply
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: int = 0
    late_sends: int = 0  # left more than LATE_SECONDS after they were due
    connections: int = 0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def finished(self) -> int:
        return sum(self.statuses.values()) + self.errors

    def figures(self) -> dict[str, float | int | dict[str, int]]:
        """Achieved send rate and reply latency (from the due time) in milliseconds."""
        span = self.last_sent - self.first_sent
        ordered = sorted(self.latencies)
        return {
            "target_rate": self.rate,
            "planned": self.planned,
            "sent_rate": round((self.finished - 1) / span) if span > 0 else 0,
            "ok": self.ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "late_sends": self.late_sends,
            "connections": self.connections,
            "latency_p50_ms": _ms(statistics.median(ordered)) if ordered else 0.0,
            "latency_p99_ms": _ms(percentile(ordered, 0.99)),
            "latency_max_ms": _ms(ordered[-1]) if ordered else 0.0,
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted list (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time for its ``OpenLoop``."""

    def __init__(self, owner: OpenLoop) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.current: tuple[int, float] | None = None  # (index, due) of the request in flight
        self._parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.owner.failed(self)
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        self.owner.replied(self, self._parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.failed(self)

    def send(self, index: int, due: float, payload: bytes) -> None:
        assert self.transport is not None
        self.current = (index, due)
        self.transport.write(payload)


class OpenLoop:
    """Send ``request(i)`` for i in ``range(count)`` at ``rate`` per second to a local port."""

    def __init__(self, port: int, max_connections: int = 256) -> None:
        self.port = port
        self.max_connections = max_connections
        self._idle: collections.deque[_Connection] = collections.deque()
        self._backlog: collections.deque[tuple[int, float]] = collections.deque()
        self._opened = 0
        self._outcome = Outcome(0, 0.0)
        self._request: Request = lambda i: b""
        self._on_reply: OnReply | None = None
        self._done: asyncio.Event | None = None
        self._opening: set[asyncio.Task[None]] = set()

    async def run(
        self, rate: float, count: int, request: Request, on_reply: OnReply | None = None
    ) -> Outcome:
        """Send ``count`` requests; ``on_reply(i, status, at)`` is called for each reply."""
        loop = asyncio.get_running_loop()
        self._outcome = outcome = Outcome(planned=count, rate=rate)
        self._request, self._on_reply, self._done = request, on_reply, asyncio.Event()
        start = loop.time() + 0.05
        scheduled = 0
        while scheduled < count:
            due_now = min(count, int((loop.time() - start) * rate) + 1)
            while scheduled < due_now:
                self._dispatch(scheduled, start + scheduled / rate)
                scheduled += 1
            await asyncio.sleep(max(TICK_SECONDS, start + scheduled / rate - loop.time()))
        if outcome.finished < count:
            await self._done.wait()
        outcome.connections = self._opened
        return outcome

    def close(self) -> None:
        while self._idle:
            connection = self._idle.pop()
            if connection.transport is not None:
                connection.transport.close()

    def _dispatch(self, index: int, due: float) -> None:
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()  # LIFO: the warmest connection
            if not connection.closed and loop.time() - connection.idle_since < IDLE_REUSE_SECONDS:
                self._send(connection, index, due)
                return
            self._drop(connection)
        if self._opened < self.max_connections:
            self._opened += 1
            task = loop.create_task(self._open(index, due))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        else:
            self._backlog.append((index, due))

    async def _open(self, index: int, due: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await loop.create_connection(
                lambda: _Connection(self), "127.0.0.1", self.port
            )
        except OSError:
            self._opened -= 1
            self._finish(index, due, None)
            return
        connection.transport = transport  # uvloop may call connection_made only later
        self._send(connection, index, due)

    def _send(self, connection: _Connection, index: int, due: float) -> None:
        now = asyncio.get_running_loop().time()
        outcome = self._outcome
        outcome.first_sent = outcome.first_sent or now
        outcome.last_sent = max(outcome.last_sent, now)
        if now - due > LATE_SECONDS:
            outcome.late_sends += 1
        connection.send(index, due, self._request(index))

    def replied(self, connection: _Connection, status: int) -> None:
        current, connection.current = connection.current, None
        if current is not None:
            self._finish(*current, status)
        self._reuse(connection)

    def failed(self, connection: _Connection) -> None:
        current, connection.current = connection.current, None
        if current is not None:
            self._finish(*current, None)
            self._drop(connection)
            if self._backlog:
                self._dispatch(*self._backlog.popleft())

    def _reuse(self, connection: _Connection) -> None:
        if self._backlog:
            self._send(connection, *self._backlog.popleft())
        else:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)

    def _finish(self, index: int, due: float, status: int | None) -> None:
        outcome = self._outcome
        now = asyncio.get_running_loop().time()
        if status is None:
            outcome.errors += 1
        else:
            outcome.latencies.append(now - due)
            outcome.statuses[status] += 1
            if self._on_reply is not None:
                self._on_reply(index, status, now)
        if outcome.finished >= outcome.planned and self._done is not None:
            self._done.set()

    def _drop(self, connection: _Connection) -> None:
        self._opened -= 1
        if connection.transport is not None and not connection.closed:
            connection.transport.close()


def post_json(port: int, path: str, token: str, body: bytes) -> bytes:
    """A complete ``POST`` request with a bearer token and a JSON body, as bytes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
