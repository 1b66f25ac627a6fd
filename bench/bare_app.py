"""The baseline: a bare Litestar endpoint, served with Medio's exact server settings."""

from __future__ import annotations

import sys

from litestar import Litestar, post

from medio.server import serve


@post("/api/progress", status_code=204)
async def save_progress() -> None:
    """Accept and drop the request: the cost of the framework and server alone."""


@post("/api/sessions/{session_id:int}/heartbeat", status_code=200)
async def heartbeat(session_id: int) -> dict[str, object]:
    return {"status": "active", "session_id": session_id}


def create() -> Litestar:
    return Litestar([save_progress, heartbeat], logging_config=None, openapi_config=None)


if __name__ == "__main__":
    serve("bench.bare_app:create", "127.0.0.1", int(sys.argv[1]), int(sys.argv[2]))
