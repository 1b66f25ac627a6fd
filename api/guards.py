"""The checks every ``/api`` request passes before its handler: rate limit, CSRF, body limits.

Each lives in its own module (``api/ratelimit.py``, ``api/csrf.py``, ``api/limits.py``) and the
app runs them, in that order, as one middleware layer (``GuardsMiddleware``). The ingest routes
are raw ASGI handlers (``api/progress.py`` explains why): they opt out of that layer with
``opt={INLINE_GUARDS: True}`` (``api/route_facts.py``) and call ``admit``, which runs the same
three checks (``Guards.check``, then the body), in the same order, as plain calls.

One layer rather than three: each layer is a coroutine frame on every request that does not
opt out, passed again at every resumption of its task. Measured on heartbeats, which opt out
but still pass the layers (``python -m bench.compare``, two runs): API CPU per beat 422 -> 386
and 385 -> 383 µs, so within this machine's noise; the single layer is kept as the simpler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.csrf import CsrfGuard
from api.limits import BODY_METHODS, BodyLimits
from api.ratelimit import RateLimiter
from api.route_facts import INLINE_GUARDS, Policy


@dataclass(frozen=True)
class Guards:
    """The app's guards (``rate_limit`` is ``None`` when rate limiting is off)."""

    rate_limit: RateLimiter | None
    csrf: CsrfGuard
    body: BodyLimits

    def middleware(self) -> list[Any]:
        """The guards as the app's middleware: one layer."""
        return [GuardsMiddleware(self)]

    async def check(self, scope: Scope, policy: Policy | None) -> None:
        """Count the request under ``policy`` (not at all for ``None``), then CSRF."""
        if self.rate_limit is not None and policy is not None:
            await self.rate_limit.admit(scope, policy)
        self.csrf.check(scope)


class GuardsMiddleware(ASGIMiddleware):
    """Rate limit, CSRF, then body limits, for every route that does not run them inline."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = INLINE_GUARDS

    def __init__(self, guards: Guards) -> None:
        self.guards = guards

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        guards = self.guards
        limiter = guards.rate_limit
        await guards.check(scope, limiter.policy_of(scope) if limiter is not None else None)
        await guards.body.handle(scope, receive, send, next_app)


async def admit(scope: Scope, receive: Receive, policy: Policy) -> bytes:
    """Run the guards for a JSON route; its whole body once they pass (else they raise)."""
    guards: Guards = scope["app"].state.guards
    await guards.check(scope, policy)
    if scope.get("method") not in BODY_METHODS:
        return b""  # as ``BodyLimits.handle``, which lets such requests pass unread
    return await guards.body.read(scope, receive)
