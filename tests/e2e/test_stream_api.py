"""``GET /api/videos/:id/stream``: a Range matrix checked against the uploaded file's bytes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

# 1.5 MB: two read chunks (1 MB each), with the boundary inside some ranges below.
VIDEO = b"\x00\x00\x00\x18ftypmp42" + random.Random(7).randbytes(1536 * 1024 - 12)
SIZE = len(VIDEO)


class Uploaded(msgspec.Struct):
    headers: dict[str, str]
    url: str
    token: str
    file: Path


@pytest.fixture
async def media_client(settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    own = msgspec.structs.replace(settings, media_root=str(tmp_path / "media"))
    async with AsyncTestClient(app=create_app(own)) as client:
        yield client


@pytest.fixture
async def uploaded(
    media_client: Client, make_token: Callable[..., str], tmp_path: Path
) -> Uploaded:
    token = make_token()
    headers = {"Authorization": f"Bearer {token}"}
    response = await media_client.post(
        "/api/videos/upload",
        files={"video": ("v.mp4", VIDEO, "video/mp4")},
        data={"title": "Range test"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    file = tmp_path / "media" / body["file_path"].removeprefix("/uploads/")
    return Uploaded(headers, f"/api/videos/{body['id']}/stream", token, file)


async def test_no_range_is_the_whole_file(media_client: Client, uploaded: Uploaded) -> None:
    response = await media_client.get(uploaded.url, headers=uploaded.headers)
    assert response.status_code == 200
    assert response.content == VIDEO
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["content-type"] == "video/mp4"
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-1023", 0, 1023),
        ("bytes=1048000-1049000", 1048000, 1049000),  # across the read-chunk boundary
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=0-", 0, SIZE - 1),
        (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),
        (f"bytes={SIZE - 10}-{SIZE + 1000}", SIZE - 10, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        (f"bytes=-{SIZE * 2}", 0, SIZE - 1),
        ("bytes=500000-1300000", 500000, 1300000),
    ],
)
async def test_range_is_206_with_exactly_those_bytes(
    media_client: Client, uploaded: Uploaded, header: str, start: int, end: int
) -> None:
    response = await media_client.get(uploaded.url, headers={**uploaded.headers, "Range": header})
    assert response.status_code == 206
    assert response.content == VIDEO[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
async def test_unsatisfiable_range_is_416_with_the_size(
    media_client: Client, uploaded: Uploaded, header: str
) -> None:
    response = await media_client.get(uploaded.url, headers={**uploaded.headers, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json()["error"]["status"] == 416


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=9-3", "pages=0-1", "bytes=0-1,4-5"])
async def test_malformed_or_multi_range_is_ignored(
    media_client: Client, uploaded: Uploaded, header: str
) -> None:
    response = await media_client.get(uploaded.url, headers={**uploaded.headers, "Range": header})
    assert response.status_code == 200
    assert response.content == VIDEO


async def test_access_token_query_parameter_works_for_streaming(
    media_client: Client, uploaded: Uploaded
) -> None:
    response = await media_client.get(
        f"{uploaded.url}?access_token={uploaded.token}", headers={"Range": "bytes=0-9"}
    )
    assert response.status_code == 206
    assert response.content == VIDEO[:10]


async def test_bad_access_token_is_401(media_client: Client, uploaded: Uploaded) -> None:
    response = await media_client.get(f"{uploaded.url}?access_token=forged")
    assert response.status_code == 401


async def test_access_token_is_not_accepted_on_other_routes(
    media_client: Client, uploaded: Uploaded
) -> None:
    video_url = uploaded.url.removesuffix("/stream")
    assert (await media_client.get(f"{video_url}?access_token={uploaded.token}")).status_code == 401
    listing = await media_client.get(f"/api/videos?access_token={uploaded.token}")
    assert listing.status_code == 401


async def test_stream_without_token_is_401(media_client: Client, uploaded: Uploaded) -> None:
    assert (await media_client.get(uploaded.url)).status_code == 401


async def test_external_url_video_redirects(media_client: Client, auth: Auth) -> None:
    headers = auth()
    created = await media_client.post(
        "/api/videos",
        json={"title": "Elsewhere", "url": "https://cdn.example.com/v.mp4"},
        headers=headers,
    )
    response = await media_client.get(
        f"/api/videos/{created.json()['id']}/stream", headers=headers, follow_redirects=False
    )
    assert response.status_code == 302
    assert response.headers["location"] == "https://cdn.example.com/v.mp4"


async def test_missing_file_on_disk_is_404(media_client: Client, uploaded: Uploaded) -> None:
    uploaded.file.unlink()
    response = await media_client.get(uploaded.url, headers=uploaded.headers)
    assert response.status_code == 404


async def test_every_stream_answer_says_nosniff(media_client: Client, uploaded: Uploaded) -> None:
    """A polyglot (an MP4 head, then HTML) must never be sniffed into a page (issue 15, L16)."""
    answers = [
        await media_client.get(uploaded.url, headers=uploaded.headers),
        await media_client.get(uploaded.url, headers={**uploaded.headers, "Range": "bytes=0-9"}),
        await media_client.get(uploaded.url, headers={**uploaded.headers, "Range": "bytes=9-0"}),
        await media_client.get(uploaded.url),  # 401
        await media_client.get("/api/videos/999999/stream", headers=uploaded.headers),
        await media_client.get("/health"),
    ]
    assert [a.headers.get("x-content-type-options") for a in answers] == ["nosniff"] * 6
