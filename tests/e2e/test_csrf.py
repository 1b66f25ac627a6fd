"""CSRF (CONTRACT §9): token route, cookie, header match, bearer requests exempt."""

from __future__ import annotations

from collections.abc import Callable

from litestar import Litestar, post
from litestar.testing import AsyncTestClient


@post("/api/test-csrf", status_code=204)
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
    assert "httponly" in response.headers["set-cookie"].lower()


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


async def test_safe_methods_need_no_token(app: Litestar) -> None:
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health")).status_code == 200
