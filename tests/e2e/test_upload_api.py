"""``POST /api/videos/upload``: the seed's 201 and 413, types by content, nothing left on failure.

Each test gets its own media root and small limits (video 2 MB, thumbnail 1 MB), so "nothing
left" means no file anywhere under that root and no row in the caller's video list.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from asgi_scope import post_scope
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

MB = 1024 * 1024
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 400
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + b"\x01" * 1000
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\x02" * 1000
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x03" * 500
PNG = b"\x89PNG\r\n\x1a\n" + b"\x04" * 500
WEBP = b"RIFF\x00\x01\x00\x00WEBPVP8 " + b"\x05" * 500
GIF = b"GIF89a" + b"\x06" * 500
BOUNDARY = "medio-test-boundary"


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def media_app(settings: Settings, media_root: Path) -> Litestar:
    small = msgspec.structs.replace(
        settings, media_root=str(media_root), max_video_bytes=2 * MB, max_thumbnail_bytes=MB
    )
    return create_app(small)


@pytest.fixture
async def media_client(media_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=media_app) as client:
        yield client


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def video_count(client: Client, headers: dict[str, str]) -> int:
    body = (await client.get("/api/videos", headers=headers)).json()
    count: int = body["metadata"]["totalCount"]
    return count


async def assert_nothing_kept(client: Client, headers: dict[str, str], media_root: Path) -> None:
    """A refused or aborted upload left no file on disk and no video row."""
    assert stored_files(media_root) == []
    assert await video_count(client, headers) == 0


async def upload(
    client: Client,
    headers: dict[str, str],
    video: tuple[str, bytes, str] | None = ("clip.mp4", MP4, "video/mp4"),
    thumbnail: tuple[str, bytes, str] | None = None,
    **fields: str,
) -> Any:
    files = {}
    if video is not None:
        files["video"] = video
    if thumbnail is not None:
        files["thumbnail"] = thumbnail
    data = {"title": "My Video Title", **fields}
    return await client.post("/api/videos/upload", files=files, data=data, headers=headers)


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart body built by hand (to cut it short or send odd parts)."""
    out = bytearray()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return bytes(out + f"--{BOUNDARY}--\r\n".encode())


async def test_upload_answers_like_the_seed(
    media_client: Client, auth: Auth, media_root: Path
) -> None:
    headers = auth()
    response = await upload(
        media_client, headers, thumbnail=("thumb.jpg", JPEG, "image/jpeg"), duration="600"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {
        "id", "title", "file_path", "thumbnail_path", "duration", "size", "mime_type", "created_at"
    }  # fmt: skip
    assert re.fullmatch(r"/uploads/videos/video-\d+-[a-f0-9]+\.mp4", body["file_path"])
    assert re.fullmatch(r"/uploads/thumbnails/thumb-\d+-[a-f0-9]+\.jpg", body["thumbnail_path"])
    assert (body["title"], body["duration"], body["size"]) == ("My Video Title", 600, len(MP4))
    assert body["mime_type"] == "video/mp4"
    assert body["created_at"].endswith("Z")
    on_disk = media_root / body["file_path"].removeprefix("/uploads/")
    assert on_disk.read_bytes() == MP4
    assert (media_root / body["thumbnail_path"].removeprefix("/uploads/")).read_bytes() == JPEG
    assert len(stored_files(media_root)) == 2
    fetched = (await media_client.get(f"/api/videos/{body['id']}", headers=headers)).json()
    assert fetched["file_path"] == body["file_path"]


@pytest.mark.parametrize(
    ("video", "mime", "extension"),
    [(MP4, "video/mp4", "mp4"), (MOV, "video/quicktime", "mov"), (WEBM, "video/webm", "webm")],
)
async def test_video_types_come_from_content_not_label(
    media_client: Client, auth: Auth, video: bytes, mime: str, extension: str
) -> None:
    response = await upload(media_client, auth(), video=("x.bin", video, "text/plain"))
    assert response.status_code == 201
    assert response.json()["mime_type"] == mime
    assert response.json()["file_path"].endswith(f".{extension}")


@pytest.mark.parametrize(("image", "extension"), [(JPEG, "jpg"), (PNG, "png"), (WEBP, "webp")])
async def test_thumbnail_types(
    media_client: Client, auth: Auth, image: bytes, extension: str
) -> None:
    response = await upload(media_client, auth(), thumbnail=("t", image, "application/x-what"))
    assert response.status_code == 201
    assert response.json()["thumbnail_path"].endswith(f".{extension}")


@pytest.mark.parametrize(
    ("field", "part"),
    [
        ("video", ("clip.mp4", GIF, "video/mp4")),  # a GIF labelled MP4
        ("thumbnail", ("t.jpg", MP4, "image/jpeg")),  # the video is removed too
    ],
)
async def test_a_file_of_the_wrong_type_is_415_and_leaves_nothing(
    media_client: Client, auth: Auth, media_root: Path, field: str, part: tuple[str, bytes, str]
) -> None:
    headers = auth()
    response = await upload(media_client, headers, **{field: part})
    assert response.status_code == 415
    assert response.json()["error"]["status"] == 415
    await assert_nothing_kept(media_client, headers, media_root)


@pytest.mark.parametrize(
    ("field", "part", "limit"),
    [
        ("video", ("big.mp4", MP4 + b"\x00" * (2 * MB - len(MP4) + 1), "video/mp4"), "2MB"),
        ("thumbnail", ("t.png", PNG + b"\x00" * MB, "image/png"), "1MB"),
    ],
)
async def test_a_file_over_its_limit_is_the_seeds_413_naming_the_field(
    media_client: Client,
    auth: Auth,
    media_root: Path,
    field: str,
    part: tuple[str, bytes, str],
    limit: str,
) -> None:
    headers = auth()
    response = await upload(media_client, headers, **{field: part})
    assert response.status_code == 413
    assert response.json() == {
        "message": f"File too large. Maximum size allowed is {limit}",
        "field": field,
        "code": "FILE_TOO_LARGE",
    }
    await assert_nothing_kept(media_client, headers, media_root)


async def test_video_of_exactly_the_limit_is_accepted(media_client: Client, auth: Auth) -> None:
    exact = MP4 + b"\x00" * (2 * MB - len(MP4))
    response = await upload(media_client, auth(), video=("v.mp4", exact, "video/mp4"))
    assert response.status_code == 201
    assert response.json()["size"] == 2 * MB


async def test_declared_length_over_every_limit_is_413_before_reading(
    media_client: Client, auth: Auth
) -> None:
    headers = {
        **auth(),
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(10 * MB),
    }
    response = await media_client.post("/api/videos/upload", content=b"", headers=headers)
    assert response.status_code == 413
    assert response.json()["code"] == "FILE_TOO_LARGE"


async def test_uploads_are_not_held_to_the_json_body_limit(client: Client, auth: Auth) -> None:
    """The app-wide limit is 64 KB for JSON; an upload route has its own, much larger one."""
    big = MP4 + b"\x00" * (300 * 1024)
    response = await upload(client, auth(), video=("v.mp4", big, "video/mp4"))
    assert response.status_code == 201
    assert response.json()["size"] == len(big)


async def test_missing_title_is_the_seed_message_and_leaves_nothing(
    media_client: Client, auth: Auth, media_root: Path
) -> None:
    headers = auth()
    response = await upload(media_client, headers, title="")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"type": "field", "msg": "Title is required", "path": "title", "location": "body"}
    ]
    await assert_nothing_kept(media_client, headers, media_root)


async def test_missing_video_is_400(media_client: Client, auth: Auth) -> None:
    response = await media_client.post(
        "/api/videos/upload",
        content=multipart([("title", None, b"T")]),
        headers={**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["video"]


async def test_empty_file_parts_count_as_no_file(
    media_client: Client, auth: Auth, media_root: Path
) -> None:
    """What a browser sends for a file input left blank: an empty part with ``filename=""``."""
    form = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    blank_thumbnail = multipart(
        [("title", None, b"T"), ("video", "v.mp4", MP4), ("thumbnail", "", b"")]
    )
    response = await media_client.post(
        "/api/videos/upload", content=blank_thumbnail, headers={**auth(), **form}
    )
    assert response.status_code == 201
    assert response.json()["thumbnail_path"] is None
    blank_video = multipart([("title", None, b"T"), ("video", "", b"")])
    response = await media_client.post(
        "/api/videos/upload", content=blank_video, headers={**auth(), **form}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"] == "Video file is required"
    assert len(stored_files(media_root)) == 1


async def test_nul_in_a_form_title_is_400_not_500(
    media_client: Client, auth: Auth, media_root: Path
) -> None:
    response = await upload(media_client, auth(), title="My\x00Title")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["title"]
    assert stored_files(media_root) == []


async def test_bad_duration_is_400(media_client: Client, auth: Auth, media_root: Path) -> None:
    response = await upload(media_client, auth(), duration="ten minutes")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["duration"]
    assert stored_files(media_root) == []


async def test_json_body_is_415(media_client: Client, auth: Auth) -> None:
    response = await media_client.post("/api/videos/upload", json={"title": "x"}, headers=auth())
    assert response.status_code == 415


async def test_cut_off_multipart_is_400_and_leaves_nothing(
    media_client: Client, auth: Auth, media_root: Path
) -> None:
    headers = auth()
    body = multipart([("title", None, b"T"), ("video", "v.mp4", MP4)])
    response = await media_client.post(
        "/api/videos/upload",
        content=body[: len(body) // 2],
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 400
    await assert_nothing_kept(media_client, headers, media_root)


async def test_two_videos_in_one_form_is_400(media_client: Client, auth: Auth) -> None:
    body = multipart([("title", None, b"T"), ("video", "a.mp4", MP4), ("video", "b.mp4", MP4)])
    response = await media_client.post(
        "/api/videos/upload",
        content=body,
        headers={**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 400


async def test_client_file_names_never_reach_the_disk(
    media_client: Client, auth: Auth, tmp_path: Path, media_root: Path
) -> None:
    name = "../../escaped.mp4"
    response = await upload(media_client, auth(), video=(name, MP4, "video/mp4"))
    assert response.status_code == 201
    assert not any("escaped" in p.name for p in tmp_path.rglob("*"))
    assert all(media_root in p.parents for p in stored_files(media_root))


async def test_aborted_upload_leaves_neither_file_nor_row(
    media_app: Litestar, media_client: Client, auth: Auth, media_root: Path
) -> None:
    """The client sends half the body and disconnects (driven at the ASGI level)."""
    headers = auth()
    video = MP4 + b"\x00" * (1900 * 1024 - len(MP4))
    body = multipart([("title", None, b"T"), ("video", "v.mp4", video)])
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[: 1500 * 1024], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []
    partial_files: list[Path] = []

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:  # about to disconnect: the upload is on disk by now
            partial_files.extend(stored_files(media_root))
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = post_scope(
        "/api/videos/upload",
        {
            "Host": "testserver",
            "Authorization": headers["Authorization"],
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(body)),
        },
    )
    # In the client's own event loop, where the app's database connections live.
    media_client.blocking_portal.call(media_app, scope, receive, send)
    assert [p.suffix for p in partial_files] == [".part"]
    assert sent[0]["status"] == 400
    await assert_nothing_kept(media_client, headers, media_root)


async def test_upload_needs_a_valid_token(media_client: Client) -> None:
    response = await media_client.post(
        "/api/videos/upload",
        files={"video": ("v.mp4", MP4, "video/mp4")},
        data={"title": "x"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
