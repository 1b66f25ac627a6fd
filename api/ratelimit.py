"""Rate limiting per CONTRACT §8: three policies, counted atomically in Redis.

Litestar's ``RateLimitMiddleware`` is not used because it cannot meet the contract: its windows
are fixed units (second/minute/hour/day, not ``100/900``), its store read-modify-write is not
atomic across API processes, and it knows one policy per app. Here each route names its
policy in ``ROUTE_POLICIES`` below (or ``opt={"rate_limit": ...}`` on a handler; default
``general`` for ``/api`` routes) and one ``MULTI`` (``INCR`` + ``EXPIRE NX``) counts the request
in a fixed window shared by every process.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from typing import Any, Literal

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from api.auth import bearer_token
from api.deps import services_of
from api.errors import ApiError, SpecialError
from medio.settings import RateLimit, Settings

log = logging.getLogger("medio.ratelimit")

Policy = Literal["general", "telemetry", "public"]
POLICIES: tuple[Policy, ...] = ("general", "telemetry", "public")

# The one list of routes that are not "general" (CONTRACT §8), by method and path template.
ROUTE_POLICIES: dict[tuple[str, str], Policy] = {
    ("POST", "/api/progress"): "telemetry",
    ("POST", "/api/sessions/{session_id}/heartbeat"): "telemetry",
    ("POST", "/api/sessions/{session_id}/end"): "telemetry",
    ("POST", "/api/sessions/start/public"): "public",
}

TOO_MANY = "Too many requests. Please try again later."
# Count a request and start its window's expiry on the first hit: atomic, one round trip
# (a MULTI pipeline of INCR + EXPIRE costs four commands and measurably more CPU per request).
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class ClientAddress:
    """The client's IP: the peer, or ``X-Forwarded-For`` when the peer is a trusted proxy."""

    def __init__(self, trusted_proxies: str) -> None:
        self.trusted = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in trusted_proxies.split(",")
            if item.strip()
        ]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops = [hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()]
                # The rightmost address not added by one of our proxies is the client.
                for hop in reversed(hops):
                    if not self._is_trusted(hop):
                        return hop
        return peer


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class RateLimitMiddleware(ASGIMiddleware):
    """Count the request against its route's policy; 429 with ``Retry-After`` when over."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, settings: Settings) -> None:
        self.limits: dict[Policy, RateLimit] = {p: settings.rate_limit(p) for p in POLICIES}
        self.addresses = ClientAddress(settings.trusted_proxies)

    def _policy(self, scope: Scope) -> Policy | None:
        handler = scope.get("route_handler")
        policy = handler.opt.get("rate_limit") if handler is not None else None
        if policy in POLICIES:
            return policy  # type: ignore[no-any-return]
        listed = ROUTE_POLICIES.get((str(scope.get("method")), scope.get("path_template", "")))
        if listed is not None:
            return listed
        return "general" if scope["path"].startswith("/api/") else None

    def _client(self, scope: Scope, policy: Policy) -> str:
        if policy != "public":
            token = bearer_token(_header(scope, b"authorization"))
            if token is not None and token.count(".") == 2:
                try:
                    return "sub:" + services_of(scope["app"].state).verifier.verify(token).sub
                except Exception:  # an invalid token is counted by address; auth answers 401
                    pass
        return "ip:" + self.addresses.of(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        policy = self._policy(scope)
        if policy is None:
            await next_app(scope, receive, send)
            return
        limit = self.limits[policy]
        now = time.time()
        window = math.floor(now / limit.seconds)
        reset = (window + 1) * limit.seconds
        key = f"medio:rl:{policy}:{self._client(scope, policy)}:{window}"
        try:
            count = await self._count(scope, key, limit.seconds)
        except RedisError:
            # Failing open: a Redis outage must not turn every request into an error here;
            # the routes that need Redis answer 503 themselves.
            log.warning("rate limit store unavailable; request not counted")
            await next_app(scope, receive, send)
            return
        headers = {
            "X-RateLimit-Limit": str(limit.requests),
            "X-RateLimit-Remaining": str(max(0, limit.requests - count)),
            "X-RateLimit-Reset": str(reset),
        }
        if count > limit.requests:
            retry_after = max(1, math.ceil(reset - now))
            raise SpecialError(
                429,
                {"message": TOO_MANY, "retryAfter": retry_after},
                {**headers, "Retry-After": str(retry_after)},
            )
        try:
            await next_app(scope, receive, _with_headers(send, headers))
        except (ApiError, SpecialError) as exc:
            # Raised by a middleware inside this one (CSRF, body limits): the app's outer
            # exception handler answers it without the send wrapper, so it carries the headers.
            exc.headers = {**headers, **exc.headers}
            raise

    async def _count(self, scope: Scope, key: str, seconds: int) -> int:
        # Through the shared autopipeline: concurrent requests' counts share a round trip.
        pipeline = services_of(scope["app"].state).container.pipeline
        return int(await pipeline.execute("EVAL", COUNT_SCRIPT, 1, key, seconds + 1))


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    encoded = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *encoded]
        await send(message)

    return send_with_headers


def route_policy(policy: Policy) -> dict[str, Any]:
    """``opt`` for a route handler: ``@post(..., opt=route_policy("telemetry"))``."""
    return {"rate_limit": policy}
