"""Slow and oversized request heads against a real uvicorn server with Medio's protocol.

The app never sees a request whose head is incomplete, so these are driven over raw sockets at
a uvicorn server (in a thread) using ``GuardedHttpToolsProtocol`` with short limits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
import uvicorn
from live_server import live_server

from adapters.settings import Settings
from api import limits
from api.app import create_app
from api.http_protocol import GuardedHttpToolsProtocol
from medio import server as medio_server
from medio.embedded import free_port

HEAD_TIMEOUT = 0.5


class QuickGuard(GuardedHttpToolsProtocol):
    head_timeout = HEAD_TIMEOUT
    max_head_bytes = 4096


@pytest.fixture
def port(settings: Settings) -> Iterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=chosen, http=QuickGuard, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield chosen
    server.should_exit = True
    thread.join(10)


def _exchange(port: int, chunks: list[bytes], pause: float = 0.0, cap: float = 5.0) -> Any:
    """Send ``chunks`` (``pause`` apart), read until the server closes; (seconds, bytes)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(cap)
    started = time.monotonic()
    received = b""
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server gave up on us first; what it said is still to be read
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        received += b"<open>"
    except ConnectionResetError:
        received += b"<reset>"
    finally:
        sock.close()
    return time.monotonic() - started, received


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _body(response: bytes) -> Any:
    return msgspec.json.decode(response.split(b"\r\n\r\n", 1)[1])


def test_a_connection_that_sends_nothing_is_closed_with_408(port: int) -> None:
    seconds, response = _exchange(port, [])
    assert _status(response) == 408 and seconds < HEAD_TIMEOUT + 1.5
    assert b"connection: close" in response
    error = _body(response)["error"]
    assert (
        error["status"] == 408 and error["message"] == "Request headers were not received in time"
    )


def test_a_head_that_never_completes_is_closed_with_408(port: int) -> None:
    seconds, response = _exchange(port, [b"GET /health HTTP/1.1\r\nHost: x\r\n"])
    assert _status(response) == 408 and seconds < HEAD_TIMEOUT + 1.5


def test_a_head_trickled_byte_by_byte_still_meets_the_deadline(port: int) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    _seconds, response = _exchange(port, [bytes([b]) for b in head], pause=0.05)
    assert _status(response) == 408
    assert b'"status":"ok"' not in response


def test_an_oversized_head_is_431_and_a_normal_one_is_served(port: int) -> None:
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n"
    _seconds, refused = _exchange(port, [big[:8192], big[8192:]], pause=0.05)
    assert _status(refused) == 431
    assert _body(refused)["error"]["message"] == "Request headers too large"
    normal = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 2048 + b"\r\nConnection: close"
    _seconds, served = _exchange(port, [normal + b"\r\n\r\n"])
    assert _status(served) == 200


def test_the_next_request_on_a_kept_alive_connection_gets_its_own_deadline(port: int) -> None:
    first = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    seconds, response = _exchange(port, [first, b"GET /health HTTP/1.1\r\n"], pause=0.2)
    assert response.count(b"HTTP/1.1 200") == 1
    assert response.count(b"HTTP/1.1 408") == 1
    assert seconds < 0.4 + HEAD_TIMEOUT + 1.5


def test_a_complete_head_with_a_slower_body_is_the_apps_business(
    port: int, make_token: Callable[..., str]
) -> None:
    """The head deadline ends with the head: a body arriving later is judged by api.limits."""
    clerk = "user_slow_body"
    body = msgspec.json.encode({"clerkId": clerk, "tmdbId": "1", "currentTime": 5})
    head = (
        f"POST /api/progress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token(clerk)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    _seconds, response = _exchange(port, [head, body], pause=HEAD_TIMEOUT * 2)
    assert _status(response) == 204


def test_medio_api_serves_with_the_guarded_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(medio_server.uvicorn, "run", lambda *a, **kw: seen.update(kw))
    medio_server.serve("api.app:app_from_env", "127.0.0.1", 8000)
    assert seen["http"] is GuardedHttpToolsProtocol


@pytest.mark.parametrize("size", [17 * 1024, 100 * 1024])
def test_a_head_over_16_kb_in_one_write_is_431(settings: Settings, size: int) -> None:
    """The cap was checked only before each read was counted, so a whole oversized head in
    one read (one send of 100 KB) got through (issue 15, L16). Production settings here."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with live_server(create_app(settings)) as production_port:
        _seconds, response = _exchange(production_port, [head])
        _seconds, fine = _exchange(
            production_port,
            [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 15000 + b"\r\n\r\n"],
            cap=1.0,
        )
    assert _status(response) == 431
    assert _status(fine) == 200


def test_a_post_whose_body_arrives_with_its_head_is_not_counted_as_head(
    settings: Settings, make_token: Callable[..., str]
) -> None:
    """Only head bytes count: a 60 KB JSON body sent in the same write as its head is fine."""
    clerk = "user_head_and_body"
    body = msgspec.json.encode(
        {"clerkId": clerk, "tmdbId": "1", "currentTime": 5, "pad": "x" * 60_000}
    )
    head = (
        f"POST /api/progress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token(clerk)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with live_server(create_app(settings)) as production_port:
        _seconds, response = _exchange(production_port, [head + body])
    assert _status(response) == 204


def _save_head(clerk: str, token: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/progress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


@pytest.fixture
def arrivals(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each body read by ``api.limits``: whether the protocol said it had all arrived."""
    seen: list[bool] = []
    read_body = limits.read_body

    async def noted(*args: Any) -> bytes:
        seen.append(args[-1])
        return await read_body(*args)

    monkeypatch.setattr(limits, "read_body", noted)
    return seen


def test_a_body_that_came_with_its_head_is_read_without_a_deadline(
    port: int, make_token: Callable[..., str], arrivals: list[bool]
) -> None:
    """The protocol tells the app a body is all there (``api.limits.BODY_ARRIVED``), so reading
    it arms no timer; a body still on its way is read under the deadlines, as before."""
    clerk = "user_whole_body"
    body = msgspec.json.encode({"clerkId": clerk, "tmdbId": "1", "currentTime": 5})
    head = _save_head(clerk, make_token(clerk), len(body))
    _seconds, whole = _exchange(port, [head + body])
    _seconds, later = _exchange(port, [head, body], pause=0.2)
    assert _status(whole) == 204 and _status(later) == 204
    assert arrivals == [True, False]


def test_a_chunked_body_over_the_limit_that_came_whole_is_413(
    port: int, settings: Settings, make_token: Callable[..., str], arrivals: list[bool]
) -> None:
    """No ``Content-Length`` to refuse it by: the bytes received are counted."""
    clerk = "user_big_chunked"
    data = b'{"pad": "' + b"x" * settings.max_json_bytes + b'"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    _seconds, response = _exchange(port, [_save_head(clerk, make_token(clerk), None) + chunked])
    assert _status(response) == 413
    assert arrivals == [True]
