"""Request bodies at the edge: size, content type, hostile JSON and clients that trickle.

Every ``POST``/``PUT``/``PATCH`` under ``/api`` passes here after rate limiting and CSRF:

* **JSON routes** (every handler that keeps a framework body limit; the app default is
  ``MEDIO_MAX_JSON_BYTES``): the body is read here, in full, before the handler runs, and
  refused with 413 past the limit (on ``Content-Length`` or on the bytes actually received),
  415 for a non-JSON ``Content-Type``, 400 for bodies that would otherwise reach a decoder or
  a database as something other than a plain client mistake: not UTF-8, nested deeper than
  ``MAX_JSON_DEPTH``, or holding a NUL character (Postgres text cannot store one). The body is
  then replayed to the handler unchanged, which parses it as before.
* **Streaming routes** (handlers with ``request_max_body_size=None``, i.e. the upload, which
  enforces its own limits as bytes arrive): passed through untouched except for the timeout.

Against slow clients each chunk must arrive within ``MEDIO_BODY_IDLE_TIMEOUT_SECONDS`` (10) of
the previous one, and a JSON body must be complete within ``MEDIO_JSON_BODY_TIMEOUT_SECONDS``
(30); otherwise 408 with ``Connection: close``.
(Slow *headers* never reach the app; see docs/operations.md "Security" for what the server does.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from adapters.settings import Settings
from api.deps import header_value
from api.errors import ApiError
from domain.catalog import is_ascii_digits

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_MEDIA_TYPES = ("application/json", "text/plain")  # text/plain: navigator.sendBeacon
MAX_JSON_DEPTH = 32

MSG_TIMEOUT = "Request body was not received in time"
MSG_INTERRUPTED = "Request body was interrupted"
MSG_TOO_LARGE = "Request body too large"
MSG_MEDIA_TYPE = "Content-Type must be application/json"
MSG_NOT_UTF8 = "Request body must be UTF-8 encoded JSON"
MSG_TOO_DEEP = "JSON body is nested too deeply"
MSG_NUL = "Text must not contain NUL characters"

# A JSON string (skipped whole) or a bracket; an escaped NUL is ``\u0000`` after an even
# number of backslashes (an odd number means the backslash itself was escaped).
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def is_json_media_type(content_type: str | None) -> bool:
    """A JSON body's ``Content-Type``: JSON, ``+json``, ``text/plain``, or none given."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")


def too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest deeper than ``MAX_JSON_DEPTH`` (cheap for flat bodies)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def json_problem(body: bytes) -> str | None:
    """Why ``body`` must not reach a handler, or ``None``; syntax errors are the handler's."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return MSG_NOT_UTF8
    if too_deep(body):
        return MSG_TOO_DEEP
    if b"\x00" in body or _ESCAPED_NUL.search(body):
        return MSG_NUL
    return None


def timed_out() -> ApiError:
    return ApiError(408, MSG_TIMEOUT, {"Connection": "close"})


def idle_limited(receive: Receive, idle_seconds: float) -> Receive:
    """``receive`` that answers 408 when the client sends nothing for ``idle_seconds``."""

    async def receive_with_timeout() -> ReceiveMessage:
        try:
            async with asyncio.timeout(idle_seconds):  # asyncio's own: cheapest on the hot path
                return await receive()
        except TimeoutError:
            raise timed_out() from None

    return receive_with_timeout


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands over ``body`` once, then defers to the connection (disconnect)."""
    sent = False

    async def receive_replayed() -> ReceiveMessage:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        message: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
        return message

    return receive_replayed


# Set in the scope by the server's protocol (``api.http_protocol``) when the whole body came in
# with the head: reading it then cannot wait on the client, so it needs no deadline.
BODY_ARRIVED = "medio.body_arrived"


async def read_body(
    receive: Receive, limit: int, total_seconds: float, idle_seconds: float, arrived: bool = False
) -> bytes:
    """The whole body, or 413 past ``limit`` bytes, 408 past ``total_seconds`` in all or
    ``idle_seconds`` without a chunk. One timer, moved after each chunk: this is the ingest
    hot path, where a second timer per request was a measurable cost. A body that already
    ``arrived`` whole is taken without one: arming and cancelling ``asyncio.timeout`` costs
    6.7 µs of CPU on uvloop (``timeit``), 1.5 % of a heartbeat's API CPU."""
    if arrived:  # one message holds it all
        message = await receive()
        if message.get("more_body", False):
            raise ApiError(400, MSG_INTERRUPTED)  # the server said it had it all: it did not
        return _chunk(message, 0, limit)
    loop = asyncio.get_running_loop()
    end = loop.time() + total_seconds
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(min(end, loop.time() + idle_seconds)) as deadline:
            while True:
                message = await receive()
                chunk = _chunk(message, size, limit)
                size += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
                deadline.reschedule(min(end, loop.time() + idle_seconds))
    except TimeoutError:
        raise timed_out() from None


def _chunk(message: ReceiveMessage, size: int, limit: int) -> bytes:
    """A body message's bytes, after ``size`` bytes read: 400 if the client went away mid-body,
    413 past ``limit`` bytes in all."""
    if message["type"] != "http.request":
        raise ApiError(400, MSG_INTERRUPTED)
    chunk = message.get("body", b"")
    if size + len(chunk) > limit:
        raise ApiError(413, MSG_TOO_LARGE, {"Connection": "close"})
    return chunk


class BodyLimits:
    """Size, type, hostile-JSON and slow-client checks on request bodies (see module doc), run
    by ``api.guards``."""

    def __init__(self, settings: Settings) -> None:
        self.idle_seconds = settings.body_idle_timeout_seconds
        self.max_json_bytes = settings.max_json_bytes  # for raw ASGI routes (no framework limit)
        self.json_seconds = settings.json_body_timeout_seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") not in BODY_METHODS or not scope["path"].startswith("/api/"):
            await next_app(scope, receive, send)
            return
        if _body_limit(scope) is None:  # the handler streams and limits its own body
            await next_app(scope, idle_limited(receive, self.idle_seconds), send)
            return
        body = await self.read(scope, receive)
        await next_app(scope, replay(body, receive), send)

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body of a JSON route, once it passed every check above."""
        limit = _body_limit(scope) or self.max_json_bytes
        declared = header_value(scope, b"content-length") or ""
        if is_ascii_digits(declared) and int(declared) > limit:
            raise ApiError(413, MSG_TOO_LARGE, {"Connection": "close"})
        arrived = BODY_ARRIVED in scope
        body = await read_body(receive, limit, self.json_seconds, self.idle_seconds, arrived)
        if body:
            if not is_json_media_type(header_value(scope, b"content-type")):
                raise ApiError(415, MSG_MEDIA_TYPE)
            if problem := json_problem(body):
                raise ApiError(400, problem)
        return body


def _body_limit(scope: Scope) -> int | None:
    handler: Any = scope.get("route_handler")
    resolve: Callable[[], int | None] | None = getattr(
        handler, "resolve_request_max_body_size", None
    )
    return resolve() if resolve is not None else None
