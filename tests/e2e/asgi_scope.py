"""The ASGI scope of a plain HTTP/1.1 ``POST`` from a test client, for tests that drive the app
at the ASGI level (bodies that stall or stop half way, which an HTTP client cannot send)."""

from __future__ import annotations

from typing import Any


def post_scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    """A ``POST`` of ``path`` with ``headers`` (names lower-cased, as ASGI carries them)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "state": {},
    }
