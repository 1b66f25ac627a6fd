"""Facts about a route, declared on it (Litestar's ``opt``) and read by the guards and OpenAPI.

One module that the guards (``api/guards.py``) and each check they run (``api/ratelimit.py``,
``api/csrf.py``, ``api/limits.py``) import, so that none of them imports another for a key.
"""

from __future__ import annotations

from typing import Any, Literal

INLINE_GUARDS = "inline_guards"  # the route calls ``admit`` itself
RATE_LIMIT = "rate_limit"  # its rate-limit policy (CONTRACT §8); default ``general``
PUBLIC = "public"  # it needs no credential: unsafe calls without one pass CSRF instead of 401
CSRF_FREE = "csrf_free"  # public and not CSRF-able: it creates nothing (device pairing, §9)

Policy = Literal["general", "telemetry", "public"]
POLICIES: tuple[Policy, ...] = ("general", "telemetry", "public")


def route_policy(policy: Policy, *, public: bool = False, csrf: bool = True) -> dict[str, Any]:
    """``opt`` for a route handler: ``@post(..., opt=route_policy("telemetry"))``.

    ``csrf=False``: a public route that needs no CSRF token either (CONTRACT §9).
    """
    return {RATE_LIMIT: policy, PUBLIC: public, CSRF_FREE: public and not csrf}


def paced_public_route() -> dict[str, Any]:
    """``opt`` of a public route counted by no rate policy: the device's token polling, which
    ``slow_down`` paces per device code instead (CONTRACT §8)."""
    return {RATE_LIMIT: None, PUBLIC: True, CSRF_FREE: True}


def inline_guards(policy: Policy) -> dict[str, Any]:
    """``opt`` of a route that runs the guards itself, counted under ``policy``."""
    return {INLINE_GUARDS: True, **route_policy(policy)}
