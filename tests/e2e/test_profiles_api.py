"""``/api/profiles`` over HTTP: the seed's shapes, its validation messages, paging, ownership."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

SEED_FIELDS = {"id", "user_id", "name", "age", "avatar_url", "daily_limit_minutes", "created_at"}


async def create(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/profiles", json={"name": "Bobby", "age": 7, **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def field_errors(response: Any) -> list[tuple[str, str, str]]:
    return [(e["path"], e["msg"], e["location"]) for e in response.json()["errors"]]


async def test_create_returns_the_seed_shape_plus_timezone_and_kids_mode(
    client: Client, auth: Auth
) -> None:
    response = await client.post(
        "/api/profiles",
        json={
            "name": "Bobby",
            "age": 7,
            "avatar_url": "https://example.com/bobby.jpg",
            "daily_limit_minutes": 45,
        },
        headers=auth(),
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= SEED_FIELDS
    assert (body["name"], body["age"], body["daily_limit_minutes"]) == ("Bobby", 7, 45)
    assert body["avatar_url"] == "https://example.com/bobby.jpg"
    assert (body["timezone"], body["kids_mode"]) == ("UTC", False)
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 24


async def test_daily_limit_defaults_to_60(client: Client, auth: Auth) -> None:
    assert (await create(client, auth()))["daily_limit_minutes"] == 60


async def test_timezone_and_kids_mode_are_stored(client: Client, auth: Auth) -> None:
    headers = auth()
    created = await create(client, headers, timezone="America/New_York", kids_mode=True)
    fetched = (await client.get(f"/api/profiles/{created['id']}", headers=headers)).json()
    assert (fetched["timezone"], fetched["kids_mode"]) == ("America/New_York", True)


async def test_invalid_name_and_age_give_the_seed_errors(client: Client, auth: Auth) -> None:
    response = await client.post("/api/profiles", json={"name": "B", "age": 18}, headers=auth())
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "type": "field",
                "msg": "Name must be between 2 and 50 characters",
                "path": "name",
                "location": "body",
            },
            {
                "type": "field",
                "msg": "Age must be between 1 and 17",
                "path": "age",
                "location": "body",
            },
        ]
    }


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"daily_limit_minutes": 1441}, "daily_limit_minutes"),
        ({"daily_limit_minutes": "lots"}, "daily_limit_minutes"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"kids_mode": "true"}, "kids_mode"),
    ],
)
async def test_bad_optional_fields_are_400(
    client: Client, auth: Auth, body: dict[str, Any], path: str
) -> None:
    response = await client.post(
        "/api/profiles", json={"name": "Bobby", "age": 7, **body}, headers=auth()
    )
    assert response.status_code == 400
    assert [e[0] for e in field_errors(response)] == [path]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b"null", b"42"])
async def test_malformed_or_non_object_bodies_are_400(
    client: Client, auth: Auth, content: bytes
) -> None:
    response = await client.post(
        "/api/profiles",
        content=content,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "error" in response.json() or "errors" in response.json()


async def test_get_patch_delete_round_trip(client: Client, auth: Auth) -> None:
    headers = auth()
    created = await create(client, headers)
    url = f"/api/profiles/{created['id']}"
    assert (await client.get(url, headers=headers)).json() == created
    patched = await client.patch(
        url, json={"daily_limit_minutes": 90, "name": "Rob"}, headers=headers
    )
    assert patched.status_code == 200
    assert (patched.json()["daily_limit_minutes"], patched.json()["name"]) == (90, "Rob")
    assert patched.json()["age"] == 7
    assert (await client.get(url, headers=headers)).json()["daily_limit_minutes"] == 90
    deleted = await client.delete(url, headers=headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_patch_validates_only_the_fields_sent(client: Client, auth: Auth) -> None:
    headers = auth()
    created = await create(client, headers)
    response = await client.patch(
        f"/api/profiles/{created['id']}", json={"age": 0}, headers=headers
    )
    assert response.status_code == 400
    assert field_errors(response) == [("age", "Age must be between 1 and 17", "body")]


async def test_patch_can_clear_the_avatar(client: Client, auth: Auth) -> None:
    headers = auth()
    created = await create(client, headers, avatar_url="https://e.com/a.png")
    response = await client.patch(
        f"/api/profiles/{created['id']}", json={"avatar_url": None}, headers=headers
    )
    assert response.json()["avatar_url"] is None


async def test_list_pages_through_the_callers_profiles(client: Client, auth: Auth) -> None:
    headers = auth()
    ids = [(await create(client, headers, name=f"Kid{n}"))["id"] for n in range(3)]
    first = (await client.get("/api/profiles?page=1&limit=2", headers=headers)).json()
    assert [p["id"] for p in first["profiles"]] == ids[:2]
    assert first["metadata"] == {
        "page": 1,
        "limit": 2,
        "totalCount": 3,
        "totalPages": 2,
        "hasNextPage": True,
        "hasPrevPage": False,
    }
    last = (await client.get("/api/profiles?page=2&limit=2", headers=headers)).json()
    assert [p["id"] for p in last["profiles"]] == ids[2:]
    assert (last["metadata"]["hasNextPage"], last["metadata"]["hasPrevPage"]) == (False, True)
    beyond = (await client.get("/api/profiles?page=3&limit=2", headers=headers)).json()
    assert beyond["profiles"] == [] and beyond["metadata"]["totalCount"] == 3


async def test_empty_list_has_zero_pages(client: Client, auth: Auth) -> None:
    body = (await client.get("/api/profiles", headers=auth())).json()
    assert body == {
        "profiles": [],
        "metadata": {
            "page": 1,
            "limit": 10,
            "totalCount": 0,
            "totalPages": 0,
            "hasNextPage": False,
            "hasPrevPage": False,
        },
    }


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("page=0", ["page"]),
        ("page=abc", ["page"]),
        ("limit=0", ["limit"]),
        ("limit=101", ["limit"]),
        ("page=-1&limit=x", ["page", "limit"]),
    ],
)
async def test_bad_page_or_limit_is_400_in_query(
    client: Client, auth: Auth, query: str, paths: list[str]
) -> None:
    response = await client.get(f"/api/profiles?{query}", headers=auth())
    assert response.status_code == 400
    assert [(e[0], e[2]) for e in field_errors(response)] == [(p, "query") for p in paths]


async def test_another_parent_sees_none_of_my_profiles(client: Client, auth: Auth) -> None:
    mine, theirs = auth(), auth()
    created = await create(client, mine)
    url = f"/api/profiles/{created['id']}"
    listed = (await client.get("/api/profiles", headers=theirs)).json()
    assert listed["profiles"] == [] and listed["metadata"]["totalCount"] == 0
    for response in (
        await client.get(url, headers=theirs),
        await client.patch(url, json={"name": "Mallory"}, headers=theirs),
        await client.delete(url, headers=theirs),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["status"] == 404
    assert (await client.get(url, headers=mine)).json()["name"] == "Bobby"


@pytest.mark.parametrize("profile_id", ["abc", "1.5", "-1", "0", "99999999999999999999999"])
async def test_odd_ids_are_404_not_500(client: Client, auth: Auth, profile_id: str) -> None:
    headers = auth()
    for response in (
        await client.get(f"/api/profiles/{profile_id}", headers=headers),
        await client.patch(f"/api/profiles/{profile_id}", json={"age": 5}, headers=headers),
        await client.delete(f"/api/profiles/{profile_id}", headers=headers),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["status"] == 404


async def test_profiles_need_a_token(client: Client) -> None:
    response = await client.get("/api/profiles")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
