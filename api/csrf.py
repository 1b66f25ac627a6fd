"""CSRF protection per CONTRACT §9: double-submit cookie, bearer-authenticated requests exempt.

Litestar's ``CSRFConfig`` is not used because the contract exempts every request that carries
an ``Authorization`` header (not CSRF-able: browsers never attach it on their own), which
Litestar can only do by path, and it needs its own token route and message.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import Cookie, State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.csrf_tokens import CsrfTokens
from api.deps import services_of
from api.errors import ApiError
from api.guards import INLINE_GUARDS
from medio.settings import Settings

COOKIE = "csrf_token"
HEADER = b"x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfToken(msgspec.Struct):
    csrfToken: str


def _cookie_value(scope: Scope) -> str | None:
    for name, raw in scope["headers"]:
        if name == b"cookie":
            for part in raw.decode("latin-1").split(";"):
                key, _, value = part.strip().partition("=")
                if key == COOKIE:
                    return value
    return None


class CsrfMiddleware(ASGIMiddleware):
    """Refuse unsafe requests without a bearer token unless ``X-CSRF-Token`` matches the cookie."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = INLINE_GUARDS

    def __init__(self, settings: Settings) -> None:
        self.tokens = CsrfTokens(settings)

    def check(self, scope: Scope) -> None:
        """403 for an unsafe ``/api`` request with neither a bearer token nor a valid token."""
        if scope.get("method") in UNSAFE_METHODS and scope["path"].startswith("/api/"):
            headers = dict(scope["headers"])
            if b"authorization" not in headers:
                header = headers.get(HEADER)
                token = header.decode("latin-1") if header else None
                if not self.tokens.valid(token, _cookie_value(scope)):
                    raise ApiError(403, "Invalid CSRF token")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        self.check(scope)
        await next_app(scope, receive, send)


class CsrfController(Controller):
    """``GET /api/csrf-token``: a token in the body and the matching cookie."""

    path = "/api/csrf-token"

    @get(summary="Get a CSRF token and its cookie")
    async def issue(self, state: State) -> Response[CsrfToken]:
        services = services_of(state)
        token = services.csrf.issue()
        cookie = Cookie(
            key=COOKIE,
            value=token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=services.container.settings.env == "production",
        )
        return Response(CsrfToken(csrfToken=token), cookies=[cookie])
