"""CSRF (CONTRACT §3, §9): token route, cookie, header match, credential headers exempt, and
401 before CSRF for a route that needs a credential and got none."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app
from api.route_facts import route_policy


@post("/api/test-csrf", status_code=204, opt=route_policy("general", public=True))
async def state_changing() -> None:
    return None


def _app(app: Litestar) -> Litestar:
    app.register(state_changing)
    return app


async def test_token_route_returns_token_and_sets_cookie(app: Litestar) -> None:
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/csrf-token")
    assert response.status_code == 200
    token = response.json()["csrfToken"]
    assert response.cookies["csrf_token"] == token
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" not in cookie  # the page reads it (§9)
    assert "samesite=strict" in cookie and "path=/" in cookie


@pytest.mark.parametrize("samesite", ["lax", "none"])
async def test_cookie_samesite_follows_the_setting(settings: Settings, samesite: str) -> None:
    configured = create_app(msgspec.structs.replace(settings, csrf_cookie_samesite=samesite))
    async with AsyncTestClient(app=configured) as client:
        cookie = (await client.get("/api/csrf-token")).headers["set-cookie"].lower()
    assert f"samesite={samesite}" in cookie
    assert ("secure" in cookie) is (samesite == "none")  # browsers drop SameSite=None without it


async def test_unsafe_request_without_token_is_403(app: Litestar) -> None:
    async with AsyncTestClient(app=_app(app)) as client:
        response = await client.post("/api/test-csrf")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Invalid CSRF token"


async def test_matching_header_and_cookie_pass(app: Litestar) -> None:
    async with AsyncTestClient(app=_app(app)) as client:
        token = (await client.get("/api/csrf-token")).json()["csrfToken"]
        response = await client.post("/api/test-csrf", headers={"X-CSRF-Token": token})
    assert response.status_code == 204


async def test_header_without_cookie_is_refused(app: Litestar) -> None:
    async with AsyncTestClient(app=_app(app)) as client:
        token = (await client.get("/api/csrf-token")).json()["csrfToken"]
        client.cookies.clear()
        response = await client.post("/api/test-csrf", headers={"X-CSRF-Token": token})
    assert response.status_code == 403


async def test_forged_token_planted_as_cookie_is_refused(app: Litestar) -> None:
    forged = "attacker-chosen.0123456789abcdef0123456789abcdef"
    async with AsyncTestClient(app=_app(app)) as client:
        client.cookies.set("csrf_token", forged)
        response = await client.post("/api/test-csrf", headers={"X-CSRF-Token": forged})
    assert response.status_code == 403


async def test_bearer_authenticated_requests_are_exempt(
    app: Litestar, auth: Callable[..., dict[str, str]]
) -> None:
    async with AsyncTestClient(app=_app(app)) as client:
        response = await client.post("/api/test-csrf", headers=auth())
    assert response.status_code == 204


async def test_session_token_header_is_exempt(app: Litestar) -> None:
    async with AsyncTestClient(app=_app(app)) as client:
        response = await client.post("/api/test-csrf", headers={"X-Session-Token": "sess_x"})
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/progress"),
        ("DELETE", "/api/progress/u1/550"),
        ("POST", "/api/videos"),
        ("POST", "/api/profiles"),
        ("POST", "/api/sessions/start"),
        ("POST", "/api/sessions/1/heartbeat"),
        ("POST", "/api/sessions/1/end"),
        ("PATCH", "/api/profiles/1"),
    ],
)
async def test_no_credential_is_401_before_csrf(app: Litestar, method: str, path: str) -> None:
    async with AsyncTestClient(app=app) as client:
        response = await client.request(method, path, json={"clerkId": "u1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    if path.startswith("/api/progress"):
        assert body == {"error": "Authentication required"}
    else:
        assert body["error"]["message"] == "Authentication required"
        assert body["error"]["status"] == 401


async def test_public_start_without_csrf_token_is_403(app: Litestar) -> None:
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/sessions/start/public", json={"profile_id": 1, "video_id": 1}
        )
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Invalid CSRF token"


async def test_safe_methods_need_no_token(app: Litestar) -> None:
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health")).status_code == 200


def _production_with_jwks_only(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings,
        env="production",
        jwt_secret=None,
        jwt_jwks_url="https://idp.example.test/.well-known/jwks.json",
        master_key="A" * 43,  # production requires one
    )


async def test_production_with_jwks_and_no_secret_starts_and_shares_its_csrf_key(
    settings: Settings,
) -> None:
    """A hosted identity provider needs no MEDIO_JWT_SECRET, but the CSRF signer needed one:
    such a deployment did not start (issue 15, L12). Its key is made once and kept in Redis,
    so a token from one API process is good at every other."""
    own = _production_with_jwks_only(settings)
    async with AsyncTestClient(app=_app(create_app(own))) as first:
        token = (await first.get("/api/csrf-token")).json()["csrfToken"]
    async with AsyncTestClient(app=_app(create_app(own))) as second:
        second.cookies.set("csrf_token", token)
        accepted = await second.post("/api/test-csrf", headers={"X-CSRF-Token": token})
        forged = "attacker-chosen.0123456789abcdef0123456789abcdef"
        second.cookies.set("csrf_token", forged)
        refused = await second.post("/api/test-csrf", headers={"X-CSRF-Token": forged})
    assert (accepted.status_code, refused.status_code) == (204, 403)
