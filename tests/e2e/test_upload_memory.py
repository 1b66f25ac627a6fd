"""The real API as a subprocess: big uploads do not grow its memory, and oversize stops early.

The server runs with a 20 MB video limit. A 40 MB upload must be refused with the seed's 413
while the client is still sending (the server stops reading at the limit), and neither that nor
an accepted 19 MB upload may grow the server's resident memory by more than a few MB.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from adapters.settings import Settings
from api.auth import create_token
from medio.embedded import free_port
from tests.processes import start_medio, wait_until

MB = 1024 * 1024
LIMIT = 20 * MB
MAX_GROWTH = 8 * MB
BOUNDARY = "medio-memory-test"
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00"


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, media: Path) -> None:
        self.process = process
        self.port = port
        self.media = media
        self.ps = psutil.Process(process.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)


@pytest.fixture(scope="module")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    media = tmp_path_factory.mktemp("upload-memory") / "media"
    env = {
        **os.environ,
        "MEDIO_PORT": str(port),
        "MEDIO_MAX_VIDEO_BYTES": str(LIMIT),
        "MEDIO_MEDIA_ROOT": str(media),
        "MEDIO_LOG_LEVEL": "WARNING",
    }
    process = start_medio(env, "api")

    def healthy() -> bool:
        assert process.poll() is None, "the API exited during start-up"
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200

    try:
        wait_until(healthy, "the API's start", 20)
        yield Server(process, port, media)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sent:
    def __init__(self) -> None:
        self.bytes = 0
        self.response = b""


def send_upload(port: int, token: str, video_size: int) -> Sent:
    """POST a multipart upload, chunked (no length up front, so only counting can stop it),
    in 256 KB writes, stopping as soon as the server answers."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nBig\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode() + MP4_HEAD
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    request = (
        f"POST /api/videos/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    piece = b"\x00" * (256 * 1024)
    sent = Sent()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request + _chunk(head))
        remaining = video_size - len(MP4_HEAD)
        try:
            while remaining > 0:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered before the body was complete
                data = piece[: min(len(piece), remaining)]
                sock.sendall(_chunk(data))
                sent.bytes += len(data)
                remaining -= len(data)
            else:
                sock.sendall(_chunk(tail) + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while not _complete(sent.response):
                data = sock.recv(65536)
                if not data:
                    break
                sent.response += data
        except ConnectionResetError:
            pass
    return sent


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return None


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    length = _content_length(head)
    return length is not None and len(body) >= length


def status_and_body(response: bytes) -> tuple[int, bytes]:
    """The first response's status and body (a read may hold bytes past it)."""
    head, _, body = response.partition(b"\r\n\r\n")
    length = _content_length(head)
    return int(head.split(b" ")[1]), body if length is None else body[:length]


class PeakRss:
    """Samples a process's RSS in the background while a block runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.server.rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


def test_oversized_upload_is_refused_early_without_memory_growth(
    server: Server, settings: Settings
) -> None:
    token = create_token(settings, "memory-test-parent")
    warm = send_upload(server.port, token, 1 * MB)  # warm up imports, pools and buffers
    assert status_and_body(warm.response)[0] == 201
    baseline = server.rss()
    with PeakRss(server) as peak:
        sent = send_upload(server.port, token, 40 * MB)
    status, body = status_and_body(sent.response)
    assert status == 413
    assert json.loads(body) == {
        "message": "File too large. Maximum size allowed is 20MB",
        "field": "video",
        "code": "FILE_TOO_LARGE",
    }
    growth = (peak.peak - baseline) / MB
    print(f"413 after {sent.bytes / MB:.1f} MB sent; peak RSS growth {growth:.1f} MB")
    assert LIMIT <= sent.bytes < 30 * MB, "the server should stop reading at the limit"
    assert peak.peak - baseline < MAX_GROWTH, (baseline, peak.peak)
    leftovers = [p for p in server.media.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []


def test_accepted_upload_streams_to_disk_without_memory_growth(
    server: Server, settings: Settings
) -> None:
    token = create_token(settings, "memory-test-parent-2")
    assert status_and_body(send_upload(server.port, token, 1 * MB).response)[0] == 201
    baseline = server.rss()
    with PeakRss(server) as peak:
        sent = send_upload(server.port, token, 19 * MB)
    status, body = status_and_body(sent.response)
    assert status == 201, body
    assert json.loads(body)["size"] == 19 * MB
    print(f"19 MB accepted; peak RSS growth {(peak.peak - baseline) / MB:.1f} MB")
    assert peak.peak - baseline < MAX_GROWTH, (baseline, peak.peak)
