"""The checks every ``/api`` request passes before its handler: rate limit, CSRF, body limits.

Each is a middleware (``api/ratelimit.py``, ``api/csrf.py``, ``api/limits.py``), run in that
order. The ingest routes are raw ASGI handlers (``api/progress.py`` explains why): they opt out
of the three middlewares with ``opt={INLINE_GUARDS: True}`` and call ``admit``, which runs the
same three checks, in the same order, as plain calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from litestar.types import Receive, Scope

if TYPE_CHECKING:
    from api.csrf import CsrfMiddleware
    from api.limits import BodyLimits
    from api.ratelimit import RateLimiter

# Facts about a route, declared on it (``opt``) and read by the guards and the OpenAPI document.
INLINE_GUARDS = "inline_guards"  # the route calls ``admit`` itself
RATE_LIMIT = "rate_limit"  # its rate-limit policy (CONTRACT §8); default ``general``
PUBLIC = "public"  # it needs no credential: unsafe calls without one pass CSRF instead of 401

Policy = Literal["general", "telemetry", "public"]
POLICIES: tuple[Policy, ...] = ("general", "telemetry", "public")


@dataclass(frozen=True)
class Guards:
    """The app's guards (``rate_limit`` is ``None`` when rate limiting is off)."""

    rate_limit: RateLimiter | None
    csrf: CsrfMiddleware
    body: BodyLimits

    def middleware(self) -> list[Any]:
        """The guards as the app's middleware stack, outermost first."""
        from api.ratelimit import RateLimitMiddleware

        stack: list[Any] = [self.csrf, self.body]
        if self.rate_limit is not None:
            stack.insert(0, RateLimitMiddleware(self.rate_limit))
        return stack


def route_policy(policy: Policy, *, public: bool = False) -> dict[str, Any]:
    """``opt`` for a route handler: ``@post(..., opt=route_policy("telemetry"))``."""
    return {RATE_LIMIT: policy, PUBLIC: public}


def inline_guards(policy: Policy) -> dict[str, Any]:
    """``opt`` of a route that runs the guards itself, counted under ``policy``."""
    return {INLINE_GUARDS: True, **route_policy(policy)}


async def admit(scope: Scope, receive: Receive, policy: Policy) -> bytes:
    """Run the guards for a JSON route; its whole body once they pass (else they raise)."""
    guards: Guards = scope["app"].state.guards
    if guards.rate_limit is not None:
        await guards.rate_limit.admit(scope, policy)
    guards.csrf.check(scope)
    return await guards.body.read(scope, receive)
