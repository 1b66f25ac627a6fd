"""CORS (CONTRACT §11) through the app: which origins get headers, on which answers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app

DEV_FRONT_END = "http://localhost:3000"
FOREIGN = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def _with(settings: Settings, **changes: object) -> Settings:
    return msgspec.structs.replace(settings, **changes)


def _cors_headers(headers: httpx.Headers) -> list[str]:
    return [name for name in headers if name.lower().startswith("access-control-")]


async def test_development_allows_any_localhost_port(settings: Settings) -> None:
    app = create_app(_with(settings, env="development", cors_origins=None))
    async with AsyncTestClient(app=app) as client:
        for origin in (DEV_FRONT_END, "http://127.0.0.1:5173", "http://localhost"):
            response = await client.options(
                "/api/progress", headers={"Origin": origin, **PREFLIGHT}
            )
            assert response.status_code == 204, origin
            assert response.headers["access-control-allow-origin"] == origin
        for origin in (FOREIGN, "http://localhost.evil.example:3000", "https://localhost:3000"):
            response = await client.options(
                "/api/progress", headers={"Origin": origin, **PREFLIGHT}
            )
            assert not _cors_headers(response.headers), origin


async def test_preflight_of_every_kind_of_route(settings: Settings) -> None:
    app = create_app(_with(settings, cors_origins=DEV_FRONT_END))
    paths = [
        "/api/progress",  # raw ASGI ingest route
        "/api/sessions/7/heartbeat",  # raw ASGI ingest route with a path parameter
        "/api/progress/u1/550",
        "/api/videos",
        "/api/no-such-route",
    ]
    async with AsyncTestClient(app=app) as client:
        for path in paths:
            response = await client.options(path, headers={"Origin": DEV_FRONT_END, **PREFLIGHT})
            assert response.status_code == 204, path
            headers = response.headers
            assert headers["access-control-allow-origin"] == DEV_FRONT_END
            assert headers["vary"] == "Origin"
            assert int(headers["access-control-max-age"]) > 0
            assert "POST" in headers["access-control-allow-methods"]
            allowed = headers["access-control-allow-headers"].lower()
            for name in (
                "authorization",
                "content-type",
                "x-csrf-token",
                "x-session-token",
                "x-request-id",
                "idempotency-key",
            ):
                assert name in allowed, (path, name)
            assert "x-request-id" in headers


async def test_answers_and_errors_carry_cors_headers(
    settings: Settings, auth: Callable[..., dict[str, str]]
) -> None:
    app = create_app(_with(settings, cors_origins=f"https://app.example.com, {DEV_FRONT_END}"))
    body = {"clerkId": "kid1", "tmdbId": 550, "currentTime": 12}
    async with AsyncTestClient(app=app) as client:
        saved = await client.post(
            "/api/progress", json=body, headers={"Origin": DEV_FRONT_END, **auth("kid1")}
        )
        refused = await client.post(
            "/api/progress", json=body, headers={"Origin": DEV_FRONT_END, **auth("other")}
        )
        missing = await client.get("/api/videos/1", headers={"Origin": DEV_FRONT_END})
        unknown = await client.get("/api/nothing-here", headers={"Origin": DEV_FRONT_END})
    assert saved.status_code == 204
    assert refused.status_code == 403
    assert missing.status_code == 401
    assert unknown.status_code == 404
    for response in (saved, refused, missing, unknown):
        assert response.headers["access-control-allow-origin"] == DEV_FRONT_END
        exposed = response.headers["access-control-expose-headers"].lower()
        for name in ("x-request-id", "x-ratelimit-remaining", "retry-after", "content-range"):
            assert name in exposed
        assert "access-control-allow-credentials" not in response.headers


async def test_foreign_origin_gets_no_cors_headers(
    settings: Settings, auth: Callable[..., dict[str, str]]
) -> None:
    app = create_app(_with(settings, cors_origins=DEV_FRONT_END))
    async with AsyncTestClient(app=app) as client:
        answer = await client.get("/api/progress/kid2", headers={"Origin": FOREIGN, **auth("kid2")})
        preflight = await client.options("/api/videos", headers={"Origin": FOREIGN, **PREFLIGHT})
    assert answer.status_code == 200
    assert not _cors_headers(answer.headers)
    assert not _cors_headers(preflight.headers)


async def test_credentials_echo_the_origin_never_star(settings: Settings) -> None:
    app = create_app(_with(settings, cors_origins="*", cors_credentials=True))
    origin = "https://anything.example"
    async with AsyncTestClient(app=app) as client:
        preflight = await client.options("/api/videos", headers={"Origin": origin, **PREFLIGHT})
        answer = await client.get("/health", headers={"Origin": origin})
    for response in (preflight, answer):
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize("env", ["production", "test"])
async def test_no_cors_outside_development_unless_configured(settings: Settings, env: str) -> None:
    production = {"master_key": "A" * 43} if env == "production" else {}
    app = create_app(_with(settings, env=env, cors_origins=None, jwt_secret="s" * 40, **production))
    async with AsyncTestClient(app=app) as client:
        response = await client.options(
            "/api/videos", headers={"Origin": DEV_FRONT_END, **PREFLIGHT}
        )
    assert not _cors_headers(response.headers)


async def test_preflights_are_not_rate_limited(settings: Settings) -> None:
    app = create_app(
        _with(
            settings, cors_origins=DEV_FRONT_END, rate_limit_enabled=True, rate_limit_public="1/60"
        )
    )
    async with AsyncTestClient(app=app) as client:
        for _ in range(5):
            response = await client.options(
                "/api/sessions/start/public", headers={"Origin": DEV_FRONT_END, **PREFLIGHT}
            )
            assert response.status_code == 204
            assert "x-ratelimit-remaining" not in response.headers
