"""The uvicorn settings of every Medio API process (the benchmark's baseline uses them too)."""

from __future__ import annotations

from typing import Any

import uvicorn

from api.http_protocol import GuardedHttpToolsProtocol


def uvicorn_options(trusted_proxies: str = "") -> dict[str, Any]:
    """uvicorn's settings for an API process (tests serve with exactly these)."""
    return {
        "log_config": None,
        "access_log": False,
        # Against slow or idle clients: drop idle keep-alive connections, cap header size
        # and in-flight requests per process.
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
        "limit_concurrency": 2048,
        "h11_max_incomplete_event_size": 16 * 1024,
        # httptools ignores the h11 cap and uvicorn has no deadline for a request head:
        # this protocol adds both (408 after 10 s, 431 over 16 KB). No "server: uvicorn".
        "http": GuardedHttpToolsProtocol,
        "server_header": False,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default (forwarded_allow_ips),
        # rewriting the client address before Medio sees it; Medio's own ClientAddress
        # applies MEDIO_TRUSTED_PROXIES, so uvicorn trusts exactly those and nothing else.
        "proxy_headers": bool(trusted_proxies.strip()),
        "forwarded_allow_ips": trusted_proxies.strip() or "",
    }


def serve(
    app_factory: str, host: str, port: int, workers: int = 1, trusted_proxies: str = ""
) -> None:
    """Serve the ASGI app built by ``app_factory`` (``module:function``) until stopped."""
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **uvicorn_options(trusted_proxies),
    )
