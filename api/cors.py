"""CORS per CONTRACT §11: web players and parent apps served from another origin.

Litestar's ``CORSConfig`` decides which origins are allowed and builds the preflight headers;
this middleware applies it. Litestar's own ``CORSMiddleware`` is not used for two reasons:
it adds ``Access-Control-Expose-Headers``, ``-Allow-Headers`` and ``-Allow-Methods`` to answers
for *any* ``Origin``, while §11 gives an origin that is not allowed no CORS headers at all; and
it answers every ``OPTIONS`` carrying an ``Origin`` as a preflight, also for foreign origins
(400), where Medio lets the route answer as it would without CORS.

It wraps the whole app, outside routing and the guards, so every route gets it (the raw ASGI
ingest routes, 404s and 405s included) and preflights are never rate limited. Headers of actual
answers are handed to ``api.request_id``, the one layer that adds headers to every response.
"""

from __future__ import annotations

from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from adapters.settings import Settings
from api.request_id import add_response_headers

ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-CSRF-Token",
    "X-Session-Token",
    "X-Request-ID",
    "Idempotency-Key",
]
EXPOSE_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Content-Range",
    "Accept-Ranges",
    "Idempotent-Replayed",
]
MAX_AGE_SECONDS = 600
# ``medio dev`` with no setting: every front-end dev server on this machine, any port.
DEV_ORIGINS = r"http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"


def cors_config(settings: Settings) -> CORSConfig | None:
    """The allowed origins of ``settings`` (``None``: CORS off, no header is ever added).

    ``*`` is written as a pattern so the request's origin is echoed, never ``*`` itself: an
    answer with credentials may not say ``*``, and one rule for both is simpler to reason about.
    """
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if settings.cors_origins is None and settings.env == "development":
        pattern: str | None = DEV_ORIGINS
    elif "*" in origins:
        pattern = ".*"
    else:
        pattern = None
    exact = [o for o in origins if o != "*"]
    if pattern is None and not exact:
        return None
    return CORSConfig(
        allow_origins=exact,  # CORSConfig escapes them (a ``*`` inside one is a wildcard)
        allow_origin_regex=pattern,
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=ALLOW_HEADERS,
        allow_credentials=settings.cors_credentials,
        expose_headers=EXPOSE_HEADERS,
        max_age=MAX_AGE_SECONDS,
    )


class CorsMiddleware:
    """Answer allowed preflights (204) and add CORS headers to allowed origins' answers."""

    def __init__(self, app: ASGIApp, config: CORSConfig) -> None:
        self.app = app
        self.config = config
        self.allowed = config.is_origin_allowed
        self.preflight = [
            (name.lower().encode(), value.encode())
            for name, value in config.preflight_headers.items()
            if name != "Access-Control-Allow-Origin"  # echoed per request below
        ]
        self.simple = [
            (name.lower().encode(), value.encode())
            for name, value in config.simple_headers.items()
            if name != "Access-Control-Allow-Origin"
        ] + [(b"vary", b"Origin")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        origin = _origin(scope)
        if origin is None or not self.allowed(origin):
            await self.app(scope, receive, send)
            return
        allow_origin = (b"access-control-allow-origin", origin.encode("latin-1"))
        if scope["method"] == "OPTIONS" and _is_preflight(scope):
            headers = [allow_origin, *self.preflight, (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        add_response_headers(scope, [allow_origin, *self.simple])
        await self.app(scope, receive, send)


def _origin(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return value.decode("latin-1")
    return None


def _is_preflight(scope: Scope) -> bool:
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])
