"""A real uvicorn server in a thread, with the production settings of ``medio.server``.

For what ``AsyncTestClient`` cannot show: it calls the app synchronously through a portal
(concurrent requests run one after another), and it has no sockets, request heads or proxies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar

from medio.embedded import free_port
from medio.server import uvicorn_options


@contextmanager
def live_server(app: Litestar, trusted_proxies: str = "", **overrides: Any) -> Iterator[int]:
    """Serve ``app`` on a free port of 127.0.0.1 until the block ends; yields the port."""
    port = free_port()
    options = {**uvicorn_options(trusted_proxies), **overrides}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)
