"""Assertions shared by the security tests: documented error shapes and nothing internal leaked."""

from __future__ import annotations

import re
from typing import Any

import httpx

# What a response must never show: tracebacks, source paths, SQL, driver or framework names,
# exception class names.
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|\[SQL:|\bSELECT\b|\bINSERT\b|\bUPDATE\b"
    r"|sqlalchemy|asyncpg|psycopg|msgspec|litestar|uvicorn|redis\.|hiredis"
    r"|\b[A-Z][a-zA-Z]*(?:Error|Exception)\b|\b0x[0-9a-f]{6,}\b",
)


def assert_no_internals(response: httpx.Response) -> None:
    """Neither the body nor any header value names how the server is built."""
    text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    found = INTERNALS.search(text)
    assert found is None, f"internal detail {found.group()!r} in {response.text[:300]!r}"


def _is_progress(path: str) -> bool:
    return path == "/api/progress" or path.startswith("/api/progress/")


def assert_error_shape(path: str, response: httpx.Response) -> None:
    """The body is one of the route family's documented error shapes (CONTRACT §2)."""
    assert response.headers.get("x-request-id"), "every response carries X-Request-ID"
    body: Any = response.json()
    assert isinstance(body, dict), body
    if _is_progress(path):
        assert isinstance(body.get("error"), str), body
        assert set(body) <= {"error", "details"}, body
        if "details" in body:
            assert body["error"] == "Validation failed"
            assert all(isinstance(v, str) for v in body["details"].values()), body
        return
    if "errors" in body:
        assert set(body) == {"errors"}, body
        for item in body["errors"]:
            assert set(item) == {"type", "msg", "path", "location"}, item
            assert item["location"] in ("body", "query", "params"), item
        return
    if "message" in body:  # the seed's special bodies: 403 daily limit, 413 upload, 429
        assert response.status_code in (403, 413, 429), body
        return
    error = body.get("error")
    assert isinstance(error, dict), body
    assert set(error) == {"message", "status", "timestamp", "requestId"}, body
    assert error["status"] == response.status_code
    assert error["requestId"] == response.headers["x-request-id"]
