"""Which routes count against which rate-limit policy (CONTRACT §8; declared on each route).

Each policy gets a different small limit, so the ``X-RateLimit-Limit`` of a response names the
policy that counted it, and one request past that limit is a 429.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.settings import load_settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

GENERAL, TELEMETRY, PUBLIC = 7, 3, 2
WINDOW = 86_400  # fixed windows: a day-long one is not crossed while the tests run
LIMITS = {
    "rate_limit_general": f"{GENERAL}/{WINDOW}",
    "rate_limit_telemetry": f"{TELEMETRY}/{WINDOW}",
    "rate_limit_public": f"{PUBLIC}/{WINDOW}",
}


pytestmark = pytest.mark.usefixtures("fresh_rate_counts")


@pytest.fixture
async def limited() -> AsyncIterator[Client]:
    settings = load_settings(env_file=None, rate_limit_enabled=True, **LIMITS)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _codes_and_limit(
    client: Client, times: int, method: str, path: str, **kwargs: Any
) -> tuple[list[int], set[str]]:
    responses = [await client.request(method, path, **kwargs) for _ in range(times)]
    return [r.status_code for r in responses], {r.headers["x-ratelimit-limit"] for r in responses}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/progress"),
        ("GET", "/api/progress/someone"),  # a player lists progress on every page (§8)
        ("GET", "/api/progress/someone/550"),
        ("DELETE", "/api/progress/someone/550"),
        ("POST", "/api/sessions/987654321/heartbeat"),
        ("POST", "/api/sessions/987654321/end"),
    ],
)
async def test_telemetry_routes_count_against_the_telemetry_policy(
    limited: Client, auth: Auth, method: str, path: str
) -> None:
    headers = auth()
    codes, limits = await _codes_and_limit(limited, TELEMETRY + 1, method, path, headers=headers)
    assert limits == {str(TELEMETRY)}
    assert 429 not in codes[:TELEMETRY]  # 400/403/404 answers are still counted and headed
    assert codes[-1] == 429


async def test_public_session_start_is_limited_per_address_whatever_the_token(
    limited: Client, auth: Auth
) -> None:
    path = "/api/sessions/start/public"
    body = {"profile_id": 987654321, "video_id": 987654321}
    responses = [await limited.post(path, json=body, headers=auth()) for _ in range(PUBLIC + 1)]
    assert {r.headers["x-ratelimit-limit"] for r in responses} == {str(PUBLIC)}
    assert [r.status_code for r in responses] == [404] * PUBLIC + [429]


async def test_unauthenticated_public_start_is_counted_before_the_csrf_check(
    limited: Client,
) -> None:
    path = "/api/sessions/start/public"
    codes, limits = await _codes_and_limit(limited, PUBLIC + 1, "POST", path, json={})
    assert limits == {str(PUBLIC)}
    assert codes == [403] * PUBLIC + [429]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/profiles"),
        ("POST", "/api/sessions/start"),
        ("GET", "/api/sessions/987654321"),
        ("GET", "/api/csrf-token"),
    ],
)
async def test_every_other_api_route_counts_against_the_general_policy(
    limited: Client, auth: Auth, method: str, path: str
) -> None:
    codes, limits = await _codes_and_limit(limited, 2, method, path, headers=auth())
    assert limits == {str(GENERAL)}
    assert 429 not in codes


async def test_policies_keep_separate_counts_for_one_user(limited: Client, auth: Auth) -> None:
    headers = auth()
    for _ in range(TELEMETRY + 1):
        await limited.post("/api/progress", json={}, headers=headers)
    general = await limited.get("/api/profiles", headers=headers)
    assert general.status_code == 200
    assert general.headers["x-ratelimit-remaining"] == str(GENERAL - 1)


async def test_answers_from_the_csrf_and_body_checks_still_carry_the_headers(
    limited: Client, auth: Auth
) -> None:
    too_large = await limited.post(
        "/api/profiles", content=b'{"name":"' + b"x" * 70_000 + b'"}', headers=auth()
    )
    no_token = await limited.post("/api/profiles", json={"name": "Ada", "age": 5})
    assert (too_large.status_code, no_token.status_code) == (413, 401)
    for response in (too_large, no_token):
        assert response.headers["x-ratelimit-limit"] == str(GENERAL)
        assert "x-ratelimit-remaining" in response.headers
