from __future__ import annotations

from typing import Any

from api.ratelimit import ClientAddress


def _scope(peer: str, forwarded: str | None = None) -> Any:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000), "headers": headers}


def test_peer_address_without_trusted_proxies() -> None:
    assert ClientAddress("").of(_scope("198.51.100.7", "203.0.113.1")) == "198.51.100.7"


def test_forwarded_for_from_trusted_proxy_names_the_client() -> None:
    addresses = ClientAddress("10.0.0.0/8")
    assert addresses.of(_scope("10.0.0.2", "203.0.113.1")) == "203.0.113.1"


def test_client_cannot_spoof_through_trusted_proxy_chain() -> None:
    addresses = ClientAddress("10.0.0.0/8")
    # The client sent "1.2.3.4" itself; the proxy appended the real address.
    assert addresses.of(_scope("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.5")) == "203.0.113.9"


def test_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    addresses = ClientAddress("10.0.0.0/8")
    assert addresses.of(_scope("198.51.100.7", "203.0.113.1")) == "198.51.100.7"
