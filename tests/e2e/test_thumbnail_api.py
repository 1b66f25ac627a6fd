"""``GET /api/videos/:id/thumbnail``: an uploaded thumbnail comes back, to its owner only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from test_upload_api import JPEG, PNG, upload

from adapters.settings import Settings
from api.app import create_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def client(settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    """The API with a media root of this test's own."""
    own_root = msgspec.structs.replace(settings, media_root=str(tmp_path / "media"))
    async with AsyncTestClient(app=create_app(own_root)) as test_client:
        yield test_client


@pytest.mark.parametrize(("image", "mime_type"), [(JPEG, "image/jpeg"), (PNG, "image/png")])
async def test_an_uploaded_thumbnail_is_served_at_its_thumbnail_url(
    client: Client, auth: Auth, image: bytes, mime_type: str
) -> None:
    headers = auth()
    created = await upload(client, headers, thumbnail=("t", image, "application/octet-stream"))
    assert created.status_code == 201, created.text
    video = created.json()
    assert video["thumbnail_url"] == f"/api/videos/{video['id']}/thumbnail"
    listed = (await client.get("/api/videos", headers=headers)).json()["videos"][0]
    assert listed["thumbnail_url"] == video["thumbnail_url"]

    response = await client.get(video["thumbnail_url"], headers=headers)
    assert response.status_code == 200
    assert response.content == image
    assert response.headers["content-type"] == mime_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, max-age=86400"
    assert response.headers["content-length"] == str(len(image))
    assert response.headers["content-disposition"].startswith("inline")


async def test_a_revalidation_with_the_etag_is_304_without_a_body(
    client: Client, auth: Auth
) -> None:
    headers = auth()
    video = (await upload(client, headers, thumbnail=("t.jpg", JPEG, "image/jpeg"))).json()
    first = await client.get(video["thumbnail_url"], headers=headers)
    etag = first.headers["etag"]
    again = await client.get(video["thumbnail_url"], headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get(video["thumbnail_url"], headers={**headers, "If-None-Match": '"x"'})
    assert other.status_code == 200


async def test_another_parents_thumbnail_is_404(client: Client, auth: Auth) -> None:
    video = (await upload(client, auth(), thumbnail=("t.png", PNG, "image/png"))).json()
    response = await client.get(video["thumbnail_url"], headers=auth())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Video not found"


async def test_a_video_without_an_uploaded_thumbnail_is_404(client: Client, auth: Auth) -> None:
    headers = auth()
    uploaded = (await upload(client, headers)).json()
    assert uploaded["thumbnail_url"] is None
    by_url = await client.post(
        "/api/videos",
        json={"title": "Linked", "url": "https://example.com/v.mp4"},
        headers=headers,
    )
    for video_id in (uploaded["id"], by_url.json()["id"]):
        response = await client.get(f"/api/videos/{video_id}/thumbnail", headers=headers)
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Thumbnail not found"


async def test_a_parents_own_thumbnail_url_wins_over_the_uploaded_one(
    client: Client, auth: Auth
) -> None:
    headers = auth()
    video = (await upload(client, headers, thumbnail=("t.png", PNG, "image/png"))).json()
    own = "https://cdn.example.com/poster.png"
    patched = await client.patch(
        f"/api/videos/{video['id']}", json={"thumbnail_url": own}, headers=headers
    )
    assert patched.json()["thumbnail_url"] == own
    served = await client.get(f"/api/videos/{video['id']}/thumbnail", headers=headers)
    assert served.status_code == 200 and served.content == PNG


async def test_thumbnail_needs_a_bearer_token_not_a_query_token(
    client: Client, auth: Auth, make_token: Callable[..., str]
) -> None:
    video = (await upload(client, auth("owner_1"), thumbnail=("t.png", PNG, "image/png"))).json()
    assert (await client.get(video["thumbnail_url"])).status_code == 401
    query = f"{video['thumbnail_url']}?access_token={make_token('owner_1')}"
    assert (await client.get(query)).status_code == 401
