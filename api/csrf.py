"""CSRF protection per CONTRACT §9: a double-submit cookie for requests without credentials.

CSRF protects ambient credentials, which a browser attaches by itself. A request that carries a
credential header (``Authorization``, ``X-Session-Token``) cannot be forged cross-site (a page
cannot set headers there), so it is exempt. An unsafe request with no credential header at all
is either for a public route (``RouteFacts.public``: the kids-mode start), which must then pass
the double-submit check unless it creates nothing a forged request could abuse
(``csrf=False``: a device's pairing calls), or for a route that needs a credential, which
answers 401 in its family first (§3): a player that forgot its token learns that, not "Invalid
CSRF token".

Litestar's ``CSRFConfig`` is not used because it can exempt requests only by path, not by the
headers they carry, and it knows nothing of 401 before CSRF; the contract also fixes the token
route and the message.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import Cookie, State
from litestar.types import Scope

from adapters.settings import Settings
from api.auth import unauthorized
from api.csrf_tokens import CsrfTokens
from api.deps import services_of
from api.errors import ApiError
from api.route_facts import facts, facts_of

COOKIE = "csrf_token"
HEADER = b"x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-session-token"})


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


class CsrfGuard:
    """Refuse unsafe requests without a bearer token unless ``X-CSRF-Token`` matches the cookie
    (run by ``api.guards``)."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = CsrfTokens(settings)

    def check(self, scope: Scope) -> None:
        """For an unsafe ``/api`` request without any credential header: 401 unless the route
        is public, then 403 unless ``X-CSRF-Token`` matches the cookie."""
        if scope.get("method") not in UNSAFE_METHODS or not scope["path"].startswith("/api/"):
            return
        headers = scope["headers"]
        if any(name in CREDENTIAL_HEADERS for name, _ in headers):
            return  # not CSRF-able; the route checks the credential itself
        route = facts_of(scope.get("route_handler"))
        if not route.public:
            raise unauthorized()
        if not route.csrf:
            return
        header = next((value for name, value in headers if name == HEADER), None)
        token = header.decode("latin-1") if header else None
        if not self.tokens.valid(token, _cookie_value(scope)):
            raise ApiError(403, "Invalid CSRF token")


class CsrfController(Controller):
    """``GET /api/csrf-token``: a token in the body and the matching cookie."""

    path = "/api/csrf-token"

    @get(summary="Get a CSRF token and its cookie", opt=facts(public=True, stores=False))
    async def issue(self, state: State) -> Response[CsrfToken]:
        services = services_of(state)
        settings = services.container.settings
        token = services.csrf.issue()
        cookie = Cookie(
            key=COOKIE,
            value=token,
            path="/",
            httponly=False,  # CONTRACT §9: the page reads it
            samesite=settings.csrf_cookie_samesite,
            # Browsers drop a ``SameSite=None`` cookie that is not ``Secure``.
            secure=settings.env == "production" or settings.csrf_cookie_samesite == "none",
        )
        return Response(CsrfToken(csrfToken=token), cookies=[cookie])
