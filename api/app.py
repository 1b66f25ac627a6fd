"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from adapters import heap
from adapters.container import Container
from adapters.logs import configure_logging
from adapters.settings import Settings, get_settings
from api.cors import CorsMiddleware, cors_config
from api.csrf import CsrfController, CsrfMiddleware
from api.deps import Services, dependencies
from api.devices import DeviceController, DevicePairingController, ProfileDevicesController
from api.errors import exception_handlers
from api.events import EventsController
from api.guards import Guards
from api.health import HealthController
from api.limits import BodyLimits
from api.openapi import document_api
from api.privacy import MeController
from api.profiles import ProfilesController
from api.progress import ProgressController
from api.ratelimit import RateLimiter
from api.request_id import RequestIdMiddleware
from api.series_progress import SeriesProgressController
from api.sessions import SessionsController
from api.stats import ProfileStatsController
from api.streaming import StreamController
from api.thumbnails import ThumbnailController
from api.uploads import UploadController
from api.videos import VideosController
from projections.recovery import check_at_start
from services.container import build_container

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")

ROUTE_HANDLERS: list[type] = [
    HealthController,
    CsrfController,
    EventsController,
    ProfilesController,
    MeController,
    VideosController,
    UploadController,
    StreamController,
    ThumbnailController,
    ProgressController,
    SeriesProgressController,
    SessionsController,
    ProfileStatsController,
    DevicePairingController,
    ProfileDevicesController,
    DeviceController,
]


def create_app(
    settings: Settings | None = None,
    container: Container | None = None,
    settle_heap: bool = False,
) -> Litestar:
    """Build the API for ``settings`` (or the environment's); connects only when serving.

    ``settle_heap``: a serving process (not a test) freezes its start-up heap (adapters.heap).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = container is None
        built = container or build_container(settings)
        app.state.services = services = Services(built)
        await guards.csrf.tokens.load_key(built.redis)
        services.csrf = guards.csrf.tokens  # one signer for the middleware and the token route
        await check_at_start(built)  # Redis behind the archive is restored before serving
        if settle_heap:
            heap.settle()  # start-up is over: its objects need no more collecting
        try:
            yield
        finally:
            if owned:
                await built.close()

    guards = Guards(
        rate_limit=RateLimiter(settings) if settings.rate_limit_enabled else None,
        csrf=CsrfMiddleware(settings),
        body=BodyLimits(settings),
    )

    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        middleware=guards.middleware(),
        state=State({"guards": guards}),  # the ingest routes run them inline (api/guards.py)
        dependencies=dependencies,
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        on_startup=[document_api],  # error responses and auth into the OpenAPI document
        logging_config=None,
        request_max_body_size=settings.max_json_bytes,
        openapi_config=OpenAPIConfig(
            title="Medio",
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=False,
    )
    _route_asgi_path_parameters(app.asgi_router.root_route_map_node)
    # Outside the router, so unknown routes (404) and wrong methods (405) get the id and the
    # CORS headers too, and preflights are answered before any guard counts them.
    handler = app.asgi_handler
    if (cors := cors_config(settings)) is not None:
        handler = CorsMiddleware(handler, cors)
    app.asgi_handler = RequestIdMiddleware(handler, settings.access_log)
    return app


def _route_asgi_path_parameters(node: Any) -> None:
    """Let raw ASGI handlers take path parameters (the session heartbeat does).

    Litestar 2.25 files an ASGI route's path parameters under the key ``"asgi"`` in its routing
    trie but looks them up under the request's method, so every request to such a route fails
    with a ``KeyError`` (a 500). Filing them under each HTTP method too is the whole fix; the
    router's own code then parses them as for any route (``tests/e2e`` covers it). Methods
    outside that list (``QUERY``, ``PROPFIND``) find them too, so they reach the handler and
    get its 405 rather than a ``KeyError``.
    """
    parameters = node.path_parameters.get("asgi") if node.is_asgi else None
    if parameters:
        for method in HTTP_METHODS:
            node.path_parameters.setdefault(method, parameters)
        node.path_parameters = _AnyMethod(node.path_parameters)
    for child in node.children.values():
        _route_asgi_path_parameters(child)


class _AnyMethod(dict[str, Any]):
    """An ASGI route's path parameters, under whatever method a request names."""

    def __missing__(self, method: str) -> Any:
        if method == "asgi" or "asgi" not in self:
            raise KeyError(method)
        return self["asgi"]


def app_from_env() -> Litestar:
    """Uvicorn factory entry point (``medio api`` uses it for multi-worker serving)."""
    return create_app(settle_heap=True)
