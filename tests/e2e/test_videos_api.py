"""``/api/videos`` over HTTP: the seed's shapes and messages, newest first, ownership."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters.settings import Settings
from api.app import create_app
from tests.catalog_bodies import seed_video_body

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

SEED_FIELDS = {
    "id",
    "title",
    "description",
    "url",
    "thumbnail_url",
    "duration",
    "user_id",
    "created_at",
}
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def create(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    video = {"title": "Space", "url": "https://example.com/space.mp4", **body}
    response = await client.post("/api/videos", json=video, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def media_client(settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    own = msgspec.structs.replace(settings, media_root=str(tmp_path / "media"))
    async with AsyncTestClient(app=create_app(own)) as client:
        yield client


async def test_create_matches_the_seed_example(client: Client, auth: Auth) -> None:
    body = seed_video_body()
    response = await client.post("/api/videos", json=body, headers=auth())
    assert response.status_code == 201
    created = response.json()
    assert set(created) >= SEED_FIELDS
    assert {k: created[k] for k in body} == body
    assert created["created_at"].endswith("Z")
    assert created["stream_url"] == f"/api/videos/{created['id']}/stream"


async def test_missing_title_and_bad_url_give_the_seed_errors(client: Client, auth: Auth) -> None:
    response = await client.post("/api/videos", json={"url": "not-a-url"}, headers=auth())
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"type": "field", "msg": "Title is required", "path": "title", "location": "body"},
            {"type": "field", "msg": "Invalid URL format", "path": "url", "location": "body"},
        ]
    }


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"title": "x" * 201}, "title"),
        ({"url": "ftp://example.com/v.mp4"}, "url"),
        ({"thumbnail_url": "data:image/png;base64,AAAA"}, "thumbnail_url"),
        ({"description": "x" * 5001}, "description"),
        ({"duration": -5}, "duration"),
        ({"duration": "ten"}, "duration"),
    ],
)
async def test_each_bad_field_is_named(
    client: Client, auth: Auth, extra: dict[str, Any], path: str
) -> None:
    body = {"title": "Space", "url": "https://example.com/space.mp4", **extra}
    response = await client.post("/api/videos", json=body, headers=auth())
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == [path]


async def test_list_is_newest_first_with_default_limit_20(client: Client, auth: Auth) -> None:
    headers = auth()
    ids = [(await create(client, headers, title=f"V{n}"))["id"] for n in range(3)]
    body = (await client.get("/api/videos", headers=headers)).json()
    assert [v["id"] for v in body["videos"]] == list(reversed(ids))
    assert body["metadata"] == {
        "page": 1,
        "limit": 20,
        "totalCount": 3,
        "totalPages": 1,
        "hasNextPage": False,
        "hasPrevPage": False,
    }


async def test_pages_split_newest_first(client: Client, auth: Auth) -> None:
    headers = auth()
    ids = [(await create(client, headers, title=f"V{n}"))["id"] for n in range(5)]
    second = (await client.get("/api/videos?page=2&limit=2", headers=headers)).json()
    assert [v["id"] for v in second["videos"]] == [ids[2], ids[1]]
    assert (second["metadata"]["totalPages"], second["metadata"]["hasNextPage"]) == (3, True)
    last = (await client.get("/api/videos?page=3&limit=2", headers=headers)).json()
    assert [v["id"] for v in last["videos"]] == [ids[0]]
    assert (last["metadata"]["hasNextPage"], last["metadata"]["hasPrevPage"]) == (False, True)


async def test_empty_video_list(client: Client, auth: Auth) -> None:
    body = (await client.get("/api/videos", headers=auth())).json()
    assert body["videos"] == [] and body["metadata"]["totalCount"] == 0


@pytest.mark.parametrize("query", ["page=0", "limit=0", "limit=101", "page=x&limit=y"])
async def test_bad_paging_is_400(client: Client, auth: Auth, query: str) -> None:
    response = await client.get(f"/api/videos?{query}", headers=auth())
    assert response.status_code == 400
    assert {e["location"] for e in response.json()["errors"]} == {"query"}


async def test_get_patch_delete_round_trip(client: Client, auth: Auth) -> None:
    headers = auth()
    created = await create(client, headers)
    url = f"/api/videos/{created['id']}"
    assert (await client.get(url, headers=headers)).json() == created
    patched = await client.patch(url, json={"title": "Stars", "duration": 60}, headers=headers)
    assert patched.status_code == 200
    assert (patched.json()["title"], patched.json()["duration"]) == ("Stars", 60)
    assert patched.json()["url"] == created["url"]
    bad = await client.patch(url, json={"title": ""}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["msg"] == "Title is required"
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_another_parent_sees_none_of_my_videos(client: Client, auth: Auth) -> None:
    mine, theirs = auth(), auth()
    created = await create(client, mine)
    url = f"/api/videos/{created['id']}"
    listed = (await client.get("/api/videos", headers=theirs)).json()
    assert listed["videos"] == [] and listed["metadata"]["totalCount"] == 0
    for response in (
        await client.get(url, headers=theirs),
        await client.patch(url, json={"title": "Mine now"}, headers=theirs),
        await client.delete(url, headers=theirs),
        await client.get(f"{url}/stream", headers=theirs),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["status"] == 404
    assert (await client.get(url, headers=mine)).json()["title"] == "Space"


@pytest.mark.parametrize("video_id", ["abc", "-1", "0", "99999999999999999999999"])
async def test_odd_video_ids_are_404(client: Client, auth: Auth, video_id: str) -> None:
    headers = auth()
    for response in (
        await client.get(f"/api/videos/{video_id}", headers=headers),
        await client.patch(f"/api/videos/{video_id}", json={"title": "x"}, headers=headers),
        await client.delete(f"/api/videos/{video_id}", headers=headers),
        await client.get(f"/api/videos/{video_id}/stream", headers=headers),
    ):
        assert response.status_code == 404


async def test_deleting_an_uploaded_video_removes_its_files(
    media_client: Client, auth: Auth, tmp_path: Path
) -> None:
    headers = auth()
    response = await media_client.post(
        "/api/videos/upload",
        files={"video": ("v.mp4", MP4, "video/mp4"), "thumbnail": ("t.png", PNG, "image/png")},
        data={"title": "Mine"},
        headers=headers,
    )
    assert response.status_code == 201
    stored = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert len(stored) == 2
    deleted = await media_client.delete(f"/api/videos/{response.json()['id']}", headers=headers)
    assert deleted.status_code == 204
    assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []


async def test_videos_need_a_token(client: Client) -> None:
    assert (await client.get("/api/videos")).status_code == 401
    assert (await client.post("/api/videos", json={})).status_code in (401, 403)
