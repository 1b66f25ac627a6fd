"""The Litestar application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from adapters.settings import Settings, get_settings
from api import events, policy, progress, series_progress, stats
from api.cors import CorsMiddleware, cors_config
from api.csrf import CsrfController, CsrfGuard
from api.deps import Services, dependencies
from api.devices import DeviceController, DevicePairingController, ProfileDevicesController
from api.errors import FAMILIES, exception_handlers, route_families
from api.fast import route_path_parameters
from api.guards import Guards
from api.health import HealthController
from api.limits import BodyLimits
from api.openapi import document_api
from api.policy import PolicyController, TimeRequestsController
from api.privacy import MeController
from api.profiles import ProfilesController
from api.ratelimit import RateLimiter
from api.request_id import RequestIdMiddleware
from api.sessions import SessionsController, heartbeat
from api.streaming import StreamController
from api.thumbnails import ThumbnailController
from api.uploads import UploadController
from api.videos import VideosController
from services.container import (
    Container,
    build_container,
    check_at_start,
    configure_logging,
    heap,
)
from services.users import follow_erasures

ROUTE_HANDLERS: list[Any] = [
    HealthController,
    CsrfController,
    *events.ROUTES,
    ProfilesController,
    MeController,
    PolicyController,
    *policy.ROUTES,
    TimeRequestsController,
    VideosController,
    UploadController,
    StreamController,
    ThumbnailController,
    SessionsController,
    heartbeat,
    *progress.ROUTES,
    *series_progress.ROUTES,
    *stats.ROUTES,
    DevicePairingController,
    ProfileDevicesController,
    DeviceController,
]


# Postgres connections each API process keeps open, and never more (adapters.db.create_engine):
# 2 processes x 20 serve 64 concurrent readers without opening new connections under load.
DATABASE_CONNECTIONS = 20


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
        built = container or build_container(settings, pool_size=DATABASE_CONNECTIONS, overflow=0)
        app.state.services = services = Services(built)
        await guards.csrf.tokens.load_key(built)
        services.csrf = guards.csrf.tokens  # one signer for the middleware and the token route
        await check_at_start(built)  # Redis behind the archive is restored before serving
        # Family erasures answered by any process: their user rows' ids are forgotten here too.
        follower = asyncio.create_task(follow_erasures(built, services.users))
        if settle_heap:
            heap.settle()  # start-up is over: its objects need no more collecting
        try:
            yield
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower
            await services.users.close()  # user rows being registered, before the engine goes
            if owned:
                await built.close()

    guards = Guards(
        rate_limit=RateLimiter(settings) if settings.rate_limit_enabled else None,
        csrf=CsrfGuard(settings),
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
    route_path_parameters(app)
    app.state[FAMILIES] = route_families(app.routes)  # unrouted paths answer in their family
    # Outside the router, so unknown routes (404) and wrong methods (405) get the id and the
    # CORS headers too, and preflights are answered before any guard counts them.
    handler = app.asgi_handler
    if (cors := cors_config(settings)) is not None:
        handler = CorsMiddleware(handler, cors)
    app.asgi_handler = RequestIdMiddleware(handler, settings.access_log)
    return app


def app_from_env() -> Litestar:
    """Uvicorn factory entry point (``medio api`` uses it for multi-worker serving)."""
    return create_app(settle_heap=True)
