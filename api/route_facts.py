"""Facts about a route, declared once on it and read by the guards, errors and OpenAPI alike.

A route states its facts in Litestar's ``opt`` (``@post(..., opt=facts(policy="telemetry"))``,
or a fast route's declaration, ``api/fast.py``). The guards (``api/ratelimit.py``,
``api/csrf.py``, ``api/limits.py``, ``api/idempotency.py``) read the policy and whether the route
is public; ``api/errors.py`` reads its error family; ``api/openapi.py`` reads the rest to say
which errors, headers, security and body the operation has. One module that all of them import,
so that none of them imports another for a key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

INLINE_GUARDS = "inline_guards"  # the route calls ``admit`` itself (Litestar's exclude_opt_key)
FACTS = "facts"  # the route's ``RouteFacts``

Policy = Literal["general", "telemetry", "public"]
POLICIES: tuple[Policy, ...] = ("general", "telemetry", "public")
Family = Literal["medio", "progress"]  # the error shapes of CONTRACT §2 (``api/errors.py``)


@dataclass(frozen=True)
class RouteFacts:
    """What a route is, beyond its path, method and handler."""

    policy: Policy | None = None  # its rate-limit policy (CONTRACT §8); None: ``general``
    # under ``/api``, none elsewhere
    rate_limited: bool = True  # False: counted by no policy (the device's token polling, which
    # ``slow_down`` paces per device code instead, CONTRACT §8)
    public: bool = False  # no credential needed: unsafe calls without one pass CSRF, not 401
    csrf: bool = True  # False: a public route that creates nothing, so needs no CSRF token
    # either (device pairing, CONTRACT §9)
    errors: Family = "medio"  # the shape of its error bodies
    device_flow: bool = False  # its 400 may be a device-flow polling error (CONTRACT §14)
    idempotent: bool = False  # takes an ``Idempotency-Key`` (CONTRACT §12)
    checks_owner: bool = False  # 403 when the caller is not the owner or lacks the role
    ids_in_body: bool = False  # 404 for ids named in its body; 403 for the daily limit
    session_state: bool = False  # 409 when the session has already ended
    session_token: bool = False  # accepts a session token as well as a bearer token
    stores: bool | None = None  # may answer 503 (a store down); None: yes under ``/api``
    access_token: bool = False  # accepts the bearer token as ``?access_token=`` too
    ranges: bool = False  # answers byte ranges (416 when unsatisfiable)
    file_upload: bool = False  # a multipart upload (its 413 names the file)
    # OpenAPI the handler's signature cannot say: a JSON body's schema (and whether it is
    # required), or a hook that rewrites the operation (media responses, multipart bodies).
    json_body: Any = None
    body_required: bool = True
    query: Mapping[str, Any] = field(default_factory=dict)  # schemas of query parameters
    document: Callable[[Any], None] | None = field(default=None, compare=False)

    def opt(self, **extra: Any) -> dict[str, Any]:
        """Litestar ``opt`` carrying these facts."""
        return {FACTS: self, **extra}


DEFAULT = RouteFacts()


def facts(**values: Any) -> dict[str, Any]:
    """``opt`` for a route handler: ``@post(..., opt=facts(policy="telemetry"))``."""
    return RouteFacts(**values).opt()


def route_policy(policy: Policy, *, public: bool = False) -> dict[str, Any]:
    """``opt`` of a route with only a rate-limit policy (and maybe public) to declare."""
    return facts(policy=policy, public=public)


def facts_of(handler: Any) -> RouteFacts:
    """The facts of a route handler (``scope["route_handler"]``), or the defaults."""
    if handler is None:
        return DEFAULT
    found: RouteFacts = handler.opt.get(FACTS, DEFAULT)
    return found


def handlers_of(route: Any) -> list[Any]:
    """The handlers of one of ``app.routes`` (an ASGI route has one, an HTTP route several)."""
    handlers: list[Any] = getattr(route, "route_handlers", None) or [route.route_handler]
    return handlers
