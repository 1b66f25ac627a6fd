from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app
from projections import lag


async def test_health_is_ok(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_redis_and_database(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"redis": "ok", "database": "ok"}


async def test_unknown_route_is_404_envelope_with_request_id(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/api/nope", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    body = response.json()["error"]
    assert set(body) == {"message", "status", "timestamp", "requestId"}
    assert body["status"] == 404
    assert body["requestId"] == "abc-123" == response.headers["x-request-id"]
    assert body["timestamp"].endswith("Z")


async def test_generated_request_id_matches_body(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/nope")
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json()["error"]["requestId"] == response.headers["x-request-id"]


async def test_invalid_client_request_id_is_replaced(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert response.headers["x-request-id"].startswith("req_")


async def test_wrong_method_is_405_envelope(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405


async def test_progress_routes_use_progress_error_family(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/progress/a/b/c/d")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


async def test_openapi_schema_is_served(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Medio"


async def test_unexpected_error_is_500_without_internals(app: Litestar) -> None:
    @get("/api/test-explodes")
    async def explodes() -> dict[str, Any]:
        raise RuntimeError("secret internal detail in /srv/medio/db.py")

    app.register(explodes)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/test-explodes")
    assert response.status_code == 500
    text = response.text
    assert "secret" not in text and "Traceback" not in text
    assert response.json()["error"]["message"] == "Internal server error"


def _access_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "medio.access"]


async def test_access_log_line_carries_the_request_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(msgspec.structs.replace(settings, access_log=True, log_level="INFO"))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/nope", headers={"X-Request-ID": "log-1"})
    lines = _access_lines(capsys.readouterr().out)
    assert [(x["request_id"], x["status"], x["path"]) for x in lines] == [
        ("log-1", 404, "/api/nope")
    ]
    assert response.json()["error"]["requestId"] == "log-1"


async def test_no_access_log_line_above_info(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(msgspec.structs.replace(settings, access_log=True, log_level="WARNING"))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health")).status_code == 200
    assert _access_lines(capsys.readouterr().out) == []


async def test_ready_is_not_a_load_amplifier(
    client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    """24 req/s of /ready with a backlog pushed save p50 from 4 to 162 ms (issue 15, L8):
    each ran XRANGE ... COUNT 10000 per checkpoint. Now at most one measurement per second
    per process, each reading a bounded number of entries."""
    calls: list[int] = []

    async def counted(redis: Any, stream: str, after: str, cap: int) -> tuple[int, str | None]:
        calls.append(cap)
        return 0, None

    monkeypatch.setattr(lag, "behind", counted)
    first = await client.get("/ready")
    one_measurement = len(calls)
    answers = [first] + [await client.get("/ready") for _ in range(19)]
    assert {answer.status_code for answer in answers} == {200}
    assert all("archive" in answer.json()["projections"] for answer in answers)
    assert 0 < len(calls) <= 2 * one_measurement  # 20 answers, one or two measurements
    assert max(calls) <= 100  # entries read per checkpoint


@pytest.mark.parametrize("method", ["QUERY", "PROPFIND", "BREW"])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/sessions/1/heartbeat", {"POST"}),
        ("/api/progress", {"POST"}),
        ("/api/videos", {"GET", "POST"}),
    ],
)
async def test_unknown_methods_are_405_with_allow(
    client: AsyncTestClient[Litestar], method: str, path: str, allowed: set[str]
) -> None:
    """Raw ASGI routes answered a method outside HTTP's usual set with a 500 (issue 15, L9)."""
    response = await client.request(method, path, headers={"Authorization": "Bearer x.y.z"})
    assert response.status_code == 405
    error = response.json()["error"]  # the progress family's is a string
    assert error["status"] == 405 if isinstance(error, dict) else bool(error)
    assert {m.strip() for m in response.headers["allow"].split(",")} - {"OPTIONS"} == allowed
