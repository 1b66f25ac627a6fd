"""``X-Forwarded-For`` is believed from ``MEDIO_TRUSTED_PROXIES`` and from no one else (M4).

uvicorn's own default (``forwarded_allow_ips`` = 127.0.0.1) rewrote the client address of any
request from the local machine before Medio saw it, so behind a local proxy every per-IP limit
could be dodged by sending a new ``X-Forwarded-For`` each time. A real uvicorn server with
``medio.server``'s options (``tests/live_server.py``), rate limiting on, counts two requests
with different forwarded addresses: one client unless the peer is a trusted proxy.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import msgspec
import pytest
from live_server import live_server

from adapters.settings import Settings
from api.app import create_app
from medio import cli
from medio import server as medio_server


def random_ip() -> str:
    return "203.0.113." + str(secrets.randbelow(250) + 1)


def remaining_after_two_forwarded_requests(settings: Settings, trusted: str) -> list[int]:
    own = msgspec.structs.replace(settings, rate_limit_enabled=True, trusted_proxies=trusted)
    with live_server(create_app(own), trusted_proxies=trusted) as port:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        answers = [
            client.get("/api/videos", headers={"X-Forwarded-For": ip})
            for ip in ("198.51.100." + str(secrets.randbelow(250) + 1), random_ip())
        ]
        client.close()
    return [int(answer.headers["x-ratelimit-remaining"]) for answer in answers]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    first, second = remaining_after_two_forwarded_requests(settings, trusted="")
    assert second == first - 1  # both counted against 127.0.0.1, the real peer


def test_forwarded_for_from_a_trusted_proxy_names_the_client(settings: Settings) -> None:
    first, second = remaining_after_two_forwarded_requests(settings, trusted="127.0.0.1")
    limit = int(settings.rate_limit_general.split("/")[0])
    assert first == second == limit - 1  # two clients behind the proxy, one request each


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8,192.168.1.1"])
def test_medio_api_gives_uvicorn_exactly_the_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, trusted: str
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(medio_server.uvicorn, "run", lambda *a, **kw: seen.update(kw))
    cli._serve_api(msgspec.structs.replace(settings, trusted_proxies=trusted))
    assert seen["forwarded_allow_ips"] == trusted
    assert seen["proxy_headers"] is bool(trusted)
