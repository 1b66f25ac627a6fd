"""``X-Request-ID`` on every response and JSON access logs, as one pure ASGI middleware.

It is also the one place that adds headers decided before the handler ran (the rate limit's
``X-RateLimit-*``, see ``add_response_headers``) to whatever response the request ends with,
success or error, so no inner layer needs a send wrapper of its own.

Written as raw ASGI rather than Litestar's ``LoggingMiddleware`` because the id must exist
before routing (404/405 bodies carry it) and the access line must carry the same id; this is
also the cheapest place on the ingest hot path.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("medio.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HEADER = b"x-request-id"
# On every response: a browser never guesses a type other than the declared one, so an upload
# that is an MP4 by its head and HTML further on (a polyglot) is never run as a page.
NOSNIFF = (b"x-content-type-options", b"nosniff")
_OURS = (_HEADER, NOSNIFF[0])  # set here once, whatever a handler set


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def request_id_of(scope: Scope | dict[str, Any]) -> str:
    """The id this request got from the middleware (or a fresh one outside it)."""
    state = scope.get("state") or {}
    value = state.get("request_id") if isinstance(state, dict) else None
    return str(value) if value else new_request_id()


def add_response_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """Have ``headers`` (lower-case names, encoded) added to this request's response."""
    scope["state"].setdefault("response_headers", []).extend(headers)


def _client_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            text = value.decode("latin-1")
            return text if _VALID_ID.match(text) else None
    return None


class RequestIdMiddleware:
    """Echo or make the request id; log one JSON line per HTTP request."""

    def __init__(self, app: ASGIApp, access_log_enabled: bool = True) -> None:
        self.app = app
        self.log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _client_id(scope) or new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        header = (_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in _OURS]
                headers.append(header)
                headers.append(NOSNIFF)
                headers.extend(state.get("response_headers", ()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_enabled and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
