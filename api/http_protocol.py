"""uvicorn's httptools protocol plus the two limits it lacks against slow or hostile clients.

Measured on uvicorn 0.54 with httptools (the ``uvicorn[standard]`` default): a connection that
sends nothing, or only part of its request head, is kept open indefinitely (uvicorn arms its
keep-alive timer only after a response), so a few thousand such sockets exhaust
``limit_concurrency`` and everyone else gets 503; and ``h11_max_incomplete_event_size`` does not
apply to httptools, so a 1 MB header line is buffered and accepted. ASGI middleware cannot help:
the app is not called before the head is complete.

A third gap: ``limit_concurrency`` caps the connections of a process, not of a client, and an
idle connection counts against it until its timeout; one client that kept reopening 4,500 idle
connections made 41 of 54 other clients' requests fail with 503. So each peer address may hold
at most ``max_connections_per_ip`` connections to a process (``MEDIO_MAX_CONNECTIONS_PER_IP``,
default 64); the next is answered 429 and closed at once. Trusted proxies
(``MEDIO_TRUSTED_PROXIES``) are exempt: all their clients share their address, and the proxy is
where per-client connection limits belong then.

This protocol gives each request head ``HEAD_TIMEOUT_SECONDS`` to arrive (from the connection
being made, or from the first byte of the next request on a kept-alive connection), then answers
408 and closes; and refuses a head over ``MAX_HEAD_BYTES`` with 431 and closes. Bodies are the
app's business (``api.limits``), told when a body came whole with its head. Used by
``medio.server.serve`` (``http=GuardedHttpToolsProtocol``).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.settings import get_settings
from api.errors import error_body
from api.limits import BODY_ARRIVED
from api.ratelimit import ClientAddress
from api.request_id import new_request_id

HEAD_TIMEOUT_SECONDS = 10.0
MAX_HEAD_BYTES = 16 * 1024

REASONS = {
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}
MESSAGES = {
    408: "Request headers were not received in time",
    429: "Too many connections from this address",
    431: "Request headers too large",
}


@functools.cache
def _configured() -> tuple[int, ClientAddress]:
    """This process's per-address cap and trusted proxies, from its settings (read once).

    Read here rather than passed in: with ``--workers`` uvicorn starts each process from its
    config by pickling, and the protocol is named there by its class.
    """
    settings = get_settings()
    return settings.max_connections_per_ip, ClientAddress(settings.trusted_proxies)


def refusal(status: int) -> bytes:
    """A complete ``Connection: close`` response in the Medio envelope (no route is known yet)."""
    request_id = new_request_id()
    body = msgspec.json.encode(error_body("medio", status, MESSAGES[status], request_id))
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"x-request-id: %s\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n"
    ) % (status, REASONS[status], len(body), request_id.encode())
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A deadline and a size cap for every request head (see the module docstring)."""

    head_timeout = HEAD_TIMEOUT_SECONDS
    max_head_bytes = MAX_HEAD_BYTES
    max_connections_per_ip: int | None = None  # None: from the settings (tests set it)
    trusted_proxies: str | None = None  # likewise

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_tail = b""
        self._counted_as: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_head()
        if self.client and not self._admit(self.client[0]):
            self._refuse(429)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._counted_as is not None:
            per_ip = self._per_ip()
            per_ip[self._counted_as] -= 1
            if per_ip[self._counted_as] <= 0:
                del per_ip[self._counted_as]
        super().connection_lost(exc)

    def _per_ip(self) -> Counter[str]:
        """Open connections by peer address, for this server (its state is per process)."""
        state = self.server_state
        counts: Counter[str] | None = getattr(state, "medio_connections_per_ip", None)
        if counts is None:
            counts = Counter()
            state.medio_connections_per_ip = counts  # type: ignore[attr-defined]
        return counts

    def _admit(self, address: str) -> bool:
        cap, proxies = _configured()
        if self.max_connections_per_ip is not None:
            cap = self.max_connections_per_ip
        if self.trusted_proxies is not None:
            proxies = ClientAddress(self.trusted_proxies)
        if proxies.is_trusted(address):
            return True
        per_ip = self._per_ip()
        if per_ip[address] >= cap:
            return False
        per_ip[address] += 1
        self._counted_as = address
        return True

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if self._head_timer is None and between_requests:
            self._expect_head()  # the next request on a kept-alive connection begins
        if self._head_timer is not None:
            # Count only the head's part of this read (a read may carry body after it), and
            # check it before parsing: a whole oversized head can come in one read.
            self._head_bytes += self._head_part(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431)
                return
        super().data_received(data)

    def _head_part(self, data: bytes) -> int:
        """How many bytes of ``data`` belong to the head still being received."""
        seen = self._head_tail + data
        self._head_tail = seen[-3:]
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            return len(data)
        return max(0, end + 4 - (len(seen) - len(data)))

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # Before the app reads it, if the body came with the head (``api.limits``).
            self.scope[BODY_ARRIVED] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def _expect_head(self) -> None:
        self._head_bytes = 0
        self._head_tail = b""  # the last bytes read, for a blank line split across reads
        self._head_timer = self.loop.call_later(self.head_timeout, self._refuse, 408)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int) -> None:
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(refusal(status))
            self.transport.close()
