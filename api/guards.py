"""The checks every ``/api`` request passes before its handler: rate limit, CSRF, body limits.

Each is a middleware (``api/ratelimit.py``, ``api/csrf.py``, ``api/limits.py``), run in that
order. The ingest routes are raw ASGI handlers (``api/progress.py`` explains why): they opt out
of the three middlewares with ``opt={INLINE_GUARDS: True}`` (``api/route_facts.py``) and call
``admit``, which runs the same three checks, in the same order, as plain calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.types import Receive, Scope

from api.csrf import CsrfMiddleware
from api.limits import BODY_METHODS, BodyLimits
from api.ratelimit import RateLimiter, RateLimitMiddleware
from api.route_facts import Policy


@dataclass(frozen=True)
class Guards:
    """The app's guards (``rate_limit`` is ``None`` when rate limiting is off)."""

    rate_limit: RateLimiter | None
    csrf: CsrfMiddleware
    body: BodyLimits

    def middleware(self) -> list[Any]:
        """The guards as the app's middleware stack, outermost first."""
        stack: list[Any] = [self.csrf, self.body]
        if self.rate_limit is not None:
            stack.insert(0, RateLimitMiddleware(self.rate_limit))
        return stack


async def admit(scope: Scope, receive: Receive, policy: Policy) -> bytes:
    """Run the guards for a JSON route; its whole body once they pass (else they raise)."""
    guards: Guards = scope["app"].state.guards
    if guards.rate_limit is not None:
        await guards.rate_limit.admit(scope, policy)
    guards.csrf.check(scope)
    if scope.get("method") not in BODY_METHODS:
        return b""  # as the body middleware, which lets such requests pass unread
    return await guards.body.read(scope, receive)
