"""One client cannot starve others of connections; an upload body has a deadline (M5).

A real uvicorn server with ``medio.server``'s options (``tests/live_server.py``) and a small
process-wide cap (``limit_concurrency``), so a few dozen sockets show what thousands did: one
client holding 4,500 idle connections made 41 of 54 normal requests fail. The hog connects from
127.0.0.2 (any 127/8 address is loopback on Linux), everyone else from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import msgspec
import pytest
from live_server import live_server

from adapters.settings import Settings
from api.app import create_app
from api.http_protocol import GuardedHttpToolsProtocol

PROCESS_CAP = 40
PER_IP = 10


class SmallCaps(GuardedHttpToolsProtocol):
    max_connections_per_ip = PER_IP


@pytest.fixture
def port(settings: Settings) -> Iterator[int]:
    own = msgspec.structs.replace(settings, upload_timeout_seconds=2.0)
    with live_server(create_app(own), http=SmallCaps, limit_concurrency=PROCESS_CAP) as chosen:
        yield chosen


def hog(port: int, count: int) -> list[socket.socket]:
    """``count`` idle connections from 127.0.0.2 (those the server refuses are closed)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", port))
        sockets.append(sock)
    return sockets


def test_one_address_holding_idle_connections_does_not_starve_others(port: int) -> None:
    held = hog(port, PROCESS_CAP + 20)
    try:
        time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            statuses = [client.get("/health").status_code for _ in range(20)]
        assert statuses == [200] * 20
        refused = b"".join(_read_all(sock) for sock in held[PER_IP:])
        assert refused.count(b"HTTP/1.1 429") == len(held) - PER_IP
    finally:
        for sock in held:
            sock.close()


def test_a_trusted_proxy_is_not_capped_per_address(port: int) -> None:
    """Behind a proxy every client shares its address; the proxy limits its own clients."""
    SmallCaps.trusted_proxies = "127.0.0.2"
    try:
        held = hog(port, PER_IP + 5)
        time.sleep(0.3)
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert all(_read_all(sock).startswith(b"HTTP/1.1 200") for sock in held)
    finally:
        SmallCaps.trusted_proxies = None


def _read_all(sock: socket.socket, cap: float = 3.0) -> bytes:
    sock.settimeout(cap)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_an_upload_body_trickled_slowly_meets_its_overall_deadline(
    port: int, make_token: Callable[..., str]
) -> None:
    """One byte a second never trips the 10 s idle timeout; the upload deadline ends it."""
    head = (
        "POST /api/videos/upload HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {make_token()}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    part = (
        b'--b\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n'
        b"Content-Type: video/mp4\r\n\r\n\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00"
    )
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head + part)
    started = time.monotonic()
    received = b""
    sock.settimeout(0.4)
    try:
        while time.monotonic() - started < 8 and not received:
            try:
                sock.sendall(b"\x00")
            except (BrokenPipeError, ConnectionResetError):
                break
            with contextlib.suppress(TimeoutError):
                received = sock.recv(65536)
        received += _read_all(sock, 1.0)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert time.monotonic() - started < 5
