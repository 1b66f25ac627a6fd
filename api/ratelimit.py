"""Rate limiting per CONTRACT §8: three policies, counted atomically in Redis.

Litestar's ``RateLimitMiddleware`` is not used because it cannot meet the contract: its windows
are fixed units (second/minute/hour/day, not ``100/900``), its store read-modify-write is not
atomic across API processes, and it knows one policy per app. Here each route names its
policy on itself (``opt=facts(policy=...)``, ``api/route_facts.py``; default ``general`` for
``/api`` routes; ``rate_limited=False`` for the device's token polling, which ``slow_down``
paces instead) and one script (``INCR`` + ``EXPIRE`` on the first hit) counts the request in
a fixed window shared by every process. Preflights never get here (``api.cors`` answers them).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from litestar.types import Scope

from adapters.settings import RateLimit, Settings
from api.auth import bearer_token
from api.deps import header_value, services_of
from api.errors import SpecialError
from api.request_id import add_response_headers
from api.route_facts import POLICIES, Policy, facts_of, route_policy
from services.guards import count_request, token_client

log = logging.getLogger("medio.ratelimit")

__all__ = ["POLICIES", "Policy", "RateLimiter", "route_policy"]

TOO_MANY = "Too many requests. Please try again later."


class ClientAddress:
    """The client's IP: the peer, or ``X-Forwarded-For`` when the peer is a trusted proxy."""

    def __init__(self, trusted_proxies: str) -> None:
        self.trusted = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in trusted_proxies.split(",")
            if item.strip()
        ]

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self.trusted or not self.is_trusted(peer):
            return peer
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops = [hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip()]
                # The rightmost address not added by one of our proxies is the client.
                for hop in reversed(hops):
                    if not self.is_trusted(hop):
                        return hop
        return peer


class RateLimiter:
    """Counts requests against their route's policy; 429 with ``Retry-After`` when over."""

    def __init__(self, settings: Settings) -> None:
        self.limits: dict[Policy, RateLimit] = {p: settings.rate_limit(p) for p in POLICIES}
        self.addresses = ClientAddress(settings.trusted_proxies)

    def policy_of(self, scope: Scope) -> Policy | None:
        """The route's policy (``None``: not limited)."""
        route = facts_of(scope.get("route_handler"))
        if not route.rate_limited:
            return None
        if route.policy is not None:
            return route.policy
        return "general" if scope["path"].startswith("/api/") else None

    async def _client(self, scope: Scope, policy: Policy) -> str:
        """Who the request counts against (CONTRACT §8): the token's ``sub`` when a JWT verifies
        without a key fetch; the device or the session when a live device or session token
        (as bearer, or ``X-Session-Token``) is presented; else the address. The public policy
        counts by address only.

        Never fetches keys: the limiter runs before authentication, on every request, and a
        token naming an unknown ``kid`` must not make it wait on the identity provider (a
        token whose key is not held yet is counted by address; authentication fetches it).
        A device or session token costs one Redis ``GET`` (``services.guards.token_client``);
        one that is not live is counted by address, where the route answers it 401.
        """
        if policy != "public":
            token = bearer_token(header_value(scope, b"authorization"))
            if token is not None and token.count(".") == 2:
                verifier = services_of(scope["app"].state).verifier
                try:
                    claims = verifier.verify_offline(token)
                except Exception:  # an invalid token is counted by address; auth answers 401
                    claims = None
                if claims is not None:
                    return "sub:" + claims.sub
            secret = token or header_value(scope, b"x-session-token")
            if secret:
                own = await token_client(services_of(scope["app"].state).container, secret)
                if own is not None:
                    return own
        return "ip:" + self.addresses.of(scope)

    async def admit(self, scope: Scope, policy: Policy) -> None:
        """Count the request; raise the 429 when over, else have its headers on the response."""
        limit = self.limits[policy]
        now = time.time()
        window = math.floor(now / limit.seconds)
        reset = (window + 1) * limit.seconds
        key = f"medio:rl:{policy}:{await self._client(scope, policy)}:{window}"
        count = await count_request(services_of(scope["app"].state).container, key, limit.seconds)
        if count is None:
            # Failing open: a Redis outage must not turn every request into an error here;
            # the routes that need Redis answer 503 themselves.
            log.warning("rate limit store unavailable; request not counted")
            return
        remaining = max(0, limit.requests - count)
        if count > limit.requests:
            retry_after = max(1, math.ceil(reset - now))
            headers = {
                "X-RateLimit-Limit": str(limit.requests),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
                "Retry-After": str(retry_after),
            }
            raise SpecialError(429, {"message": TOO_MANY, "retryAfter": retry_after}, headers)
        add_response_headers(
            scope,
            [
                (b"x-ratelimit-limit", str(limit.requests).encode()),
                (b"x-ratelimit-remaining", str(remaining).encode()),
                (b"x-ratelimit-reset", str(reset).encode()),
            ],
        )
