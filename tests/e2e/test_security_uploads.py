"""Upload file names are never trusted: no traversal, no client name on disk or in ``file_path``.

Multipart bodies are built by hand so the ``Content-Disposition`` header carries exactly the
hostile bytes (``../``, absolute paths, backslashes, encoded dots, NUL, RFC 5987 ``filename*``,
huge names). Whatever the name, the file lands under ``MEDIO_MEDIA_ROOT`` with a server-made
name whose extension comes from the file's content, and nothing is written anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from security_checks import assert_error_shape, assert_no_internals

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x04" * 500
BOUNDARY = "medio-traversal-boundary"
STORED = re.compile(r"/uploads/(videos/video|thumbnails/thumb)-\d+-[a-f0-9]+\.(mp4|png)")

HOSTILE_NAMES: list[bytes] = [
    b"../../escaped.mp4",
    b"../../../../../../tmp/escaped.mp4",
    b"/etc/escaped.mp4",
    b"..\\..\\escaped.mp4",
    b"C:\\Windows\\escaped.mp4",
    b"videos/../../escaped.mp4",
    b"%2e%2e%2f%2e%2e%2fescaped.mp4",
    b"..%c0%afescaped.mp4",
    b"escaped.php",
    b".htaccess",
    b"escaped\x00.mp4",
    b"escaped\r\nX-Injected: 1.mp4",
    "\u202eescaped4pm.mp4".encode(),
    "ビデオ/../escaped.mp4".encode(),
    b"escaped" * 2000 + b".mp4",
    b"",
]


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "deep" / "media"


@pytest.fixture
async def client(settings: Settings, media_root: Path) -> AsyncIterator[Client]:
    own = msgspec.structs.replace(settings, media_root=str(media_root))
    async with AsyncTestClient(app=create_app(own)) as test_client:
        yield test_client


def _form(video_disposition: bytes, thumbnail_disposition: bytes | None = None) -> bytes:
    parts = [(b'form-data; name="title"', b"Traversal")]
    parts.append((video_disposition, MP4))
    if thumbnail_disposition is not None:
        parts.append((thumbnail_disposition, PNG))
    out = bytearray()
    for disposition, content in parts:
        out += b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition
        out += b"\r\n\r\n" + content + b"\r\n"
    return bytes(out + b"--" + BOUNDARY.encode() + b"--\r\n")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


async def _upload(client: Client, auth: Auth, body: bytes) -> object:
    headers = {**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await client.post("/api/videos/upload", content=body, headers=headers)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:30]))
async def test_hostile_file_names_never_shape_the_stored_path(
    client: Client, auth: Auth, tmp_path: Path, media_root: Path, name: bytes
) -> None:
    before = _files(tmp_path)
    video = b'form-data; name="video"; filename="' + name + b'"'
    thumbnail = b'form-data; name="thumbnail"; filename="' + name.replace(b".mp4", b".png") + b'"'
    response = await _upload(client, auth, _form(video, thumbnail))
    created = _files(tmp_path) - before
    if response.status_code == 201:  # type: ignore[attr-defined]
        body = response.json()  # type: ignore[attr-defined]
        assert STORED.fullmatch(body["file_path"]), body["file_path"]
        assert STORED.fullmatch(body["thumbnail_path"]), body["thumbnail_path"]
        assert body["file_path"].endswith(".mp4") and body["thumbnail_path"].endswith(".png")
        assert len(created) == 2
    else:  # refusing the odd name is fine too, as long as it is a clean 4xx and nothing stays
        assert 400 <= response.status_code < 500  # type: ignore[attr-defined]
        assert_error_shape("/api/videos/upload", response)  # type: ignore[arg-type]
        assert created == set()
    assert all(media_root in p.parents for p in created), created
    assert not any("escaped" in p.name or ".htaccess" in p.name for p in created)


async def test_rfc5987_filename_star_is_ignored_too(
    client: Client, auth: Auth, tmp_path: Path, media_root: Path
) -> None:
    before = _files(tmp_path)
    video = b"form-data; name=\"video\"; filename*=UTF-8''..%2F..%2Fescaped.mp4"
    response = await _upload(client, auth, _form(video))
    assert response.status_code == 201  # type: ignore[attr-defined]
    created = _files(tmp_path) - before
    assert len(created) == 1 and media_root in next(iter(created)).parents


async def test_a_field_name_with_a_path_is_not_a_file_field(
    client: Client, auth: Auth, tmp_path: Path
) -> None:
    before = _files(tmp_path)
    video = b'form-data; name="../video"; filename="v.mp4"'
    response = await _upload(client, auth, _form(video))
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert_no_internals(response)  # type: ignore[arg-type]
    assert _files(tmp_path) - before == set()
