"""The uvicorn settings of every Medio API process (the benchmark's baseline uses them too)."""

from __future__ import annotations

import uvicorn

from api.http_protocol import GuardedHttpToolsProtocol


def serve(app_factory: str, host: str, port: int, workers: int = 1) -> None:
    """Serve the ASGI app built by ``app_factory`` (``module:function``) until stopped."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # Against slow or idle clients: drop idle keep-alive connections, cap header size
        # and in-flight requests per process.
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        limit_concurrency=2048,
        h11_max_incomplete_event_size=16 * 1024,
        # httptools ignores the h11 cap and uvicorn has no deadline for a request head:
        # this protocol adds both (408 after 10 s, 431 over 16 KB). No "server: uvicorn".
        http=GuardedHttpToolsProtocol,
        server_header=False,
    )
