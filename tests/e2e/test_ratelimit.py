"""Rate limiting (CONTRACT §8): policies, headers, 429 body, shared counts, client identity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient

from adapters.container import Container
from adapters.settings import Settings, load_settings
from api.app import create_app
from api.ratelimit import route_policy

pytestmark = pytest.mark.usefixtures("fresh_rate_counts")


@post("/api/test-telemetry", opt=route_policy("telemetry"), status_code=204)
async def telemetry_route() -> None:
    return None


def _limited_app(**limits: str) -> Litestar:
    settings: Settings = load_settings(env_file=None, rate_limit_enabled=True, **limits)
    app = create_app(settings)
    app.register(telemetry_route)
    return app


async def test_general_policy_headers_then_429_with_retry_after(
    auth: Callable[..., dict[str, str]],
) -> None:
    headers = auth()
    async with AsyncTestClient(app=_limited_app(rate_limit_general="3/60")) as client:
        seen = [await client.get("/api/csrf-token", headers=headers) for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert all(r.headers["x-ratelimit-limit"] == "3" for r in seen)
    limited = seen[-1]
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert limited.json() == {
        "message": "Too many requests. Please try again later.",
        "retryAfter": retry_after,
    }
    assert int(limited.headers["x-ratelimit-reset"]) >= int(seen[0].headers["x-ratelimit-reset"])


async def test_each_subject_has_its_own_count(auth: Callable[..., dict[str, str]]) -> None:
    async with AsyncTestClient(app=_limited_app(rate_limit_general="1/60")) as client:
        first = await client.get("/api/csrf-token", headers=auth())
        second = await client.get("/api/csrf-token", headers=auth())
    assert (first.status_code, second.status_code) == (200, 200)


async def test_route_policy_selects_telemetry_limit(auth: Callable[..., dict[str, str]]) -> None:
    headers = auth()
    app = _limited_app(rate_limit_general="1/60", rate_limit_telemetry="5/60")
    async with AsyncTestClient(app=app) as client:
        response = await client.post("/api/test-telemetry", headers=headers)
    assert response.status_code == 204
    assert response.headers["x-ratelimit-limit"] == "5"


async def test_count_is_shared_by_concurrent_requests_and_processes(
    auth: Callable[..., dict[str, str]],
) -> None:
    """Two app instances (as two API processes) share one Redis count; none over-admits."""
    headers = auth()
    app_a = _limited_app(rate_limit_general="10/60")
    app_b = _limited_app(rate_limit_general="10/60")
    async with AsyncTestClient(app=app_a) as a, AsyncTestClient(app=app_b) as b:
        responses = await asyncio.gather(
            *[(a if i % 2 else b).get("/api/csrf-token", headers=headers) for i in range(30)]
        )
    assert sorted(r.status_code for r in responses).count(200) == 10


async def test_unauthenticated_clients_are_counted_by_address() -> None:
    async with AsyncTestClient(app=_limited_app(rate_limit_general="2/60")) as client:
        codes = [(await client.get("/api/csrf-token")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    app = _limited_app(rate_limit_general="1/60", trusted_proxies="127.0.0.0/8")
    async with AsyncTestClient(app=app) as client:
        spoofed = [
            await client.get("/api/csrf-token", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(2)
        ]
    # The test client's peer is not a trusted proxy: both count as the same client.
    assert [r.status_code for r in spoofed] == [200, 429]


async def test_health_is_not_rate_limited() -> None:
    async with AsyncTestClient(app=_limited_app(rate_limit_general="1/60")) as client:
        responses = [await client.get("/health") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "x-ratelimit-limit" not in responses[-1].headers


async def test_the_progress_save_counts_inline_with_one_set_of_headers_per_response(
    auth: Callable[..., dict[str, str]],
) -> None:
    """``POST /api/progress`` runs the guards itself (api/guards.py): same policy, headers on
    successes and errors alike, exactly once each, and the 429 of every other route."""
    headers = auth("user_inline_guards")
    body = {"clerkId": "user_inline_guards", "tmdbId": "7", "currentTime": 1}
    app = _limited_app(rate_limit_general="1/60", rate_limit_telemetry="3/60")
    async with AsyncTestClient(app=app) as client:
        saved = [await client.post("/api/progress", json=body, headers=headers) for _ in range(2)]
        invalid = await client.post("/api/progress", json={}, headers=headers)
        limited = await client.post("/api/progress", json=body, headers=headers)
    assert [r.status_code for r in [*saved, invalid, limited]] == [204, 204, 400, 429]
    for response, remaining in zip([*saved, invalid], ["2", "1", "0"], strict=True):
        assert response.headers.get_list("x-ratelimit-remaining") == [remaining]
        assert response.headers.get_list("x-ratelimit-limit") == ["3"]
        assert len(response.headers.get_list("x-ratelimit-reset")) == 1
        assert len(response.headers.get_list("x-request-id")) == 1
    assert limited.json() == {
        "message": "Too many requests. Please try again later.",
        "retryAfter": int(limited.headers["retry-after"]),
    }
    assert limited.headers.get_list("x-ratelimit-remaining") == ["0"]


async def test_counting_survives_a_script_flush(
    auth: Callable[..., dict[str, str]], container: Container
) -> None:
    """The count runs by EVALSHA; a server without the script loaded gets it sent again."""
    headers = auth()
    async with AsyncTestClient(app=_limited_app(rate_limit_general="5/60")) as client:
        first = await client.get("/api/csrf-token", headers=headers)
        await container.redis.script_flush()
        second = await client.get("/api/csrf-token", headers=headers)
    assert [first.headers["x-ratelimit-remaining"], second.headers["x-ratelimit-remaining"]] == [
        "4",
        "3",
    ]
