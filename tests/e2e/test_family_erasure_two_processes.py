"""A family erased through one ``medio api`` process is forgotten by the other at once.

Each process remembers a ``sub``'s user row id. The erasure deletes that row; the process that
did not answer it used to keep the deleted id, and the family's next write there failed on the
foreign key (a 500) until it restarted. (``two_apis``: ``tests/e2e/conftest.py``.)
"""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import sqlalchemy as sa

from adapters.settings import Settings
from adapters.tables import profiles, users
from api.auth import create_token
from services.container import build_container

ERASE = {"confirm": "DELETE"}


def _scalar(settings: Settings, query: sa.Select[tuple[int]]) -> int | None:
    """One value read from this run's database (the test itself runs no event loop)."""

    async def read() -> int | None:
        container = build_container(settings)
        try:
            async with container.engine.connect() as conn:
                found = await conn.scalar(query)
        finally:
            await container.close()
        return None if found is None else int(found)

    return asyncio.run(read())


def _user_row(settings: Settings, sub: str) -> int | None:
    return _scalar(settings, sa.select(users.c.id).where(users.c.external_id == sub))


def _owner_of(settings: Settings, profile_id: int) -> int | None:
    return _scalar(settings, sa.select(profiles.c.user_id).where(profiles.c.id == profile_id))


def _family(settings: Settings, name: str) -> tuple[str, dict[str, str]]:
    sub = f"{name}_{secrets.token_hex(3)}"
    return sub, {"Authorization": f"Bearer {create_token(settings, sub)}"}


def _profile_ids(client: httpx.Client, headers: dict[str, str]) -> list[int]:
    answer = client.get("/api/profiles", headers=headers)
    assert answer.status_code == 200, answer.text
    return [p["id"] for p in answer.json()["profiles"]]


def test_a_family_erased_on_one_process_creates_a_profile_on_the_other(
    two_apis: tuple[httpx.Client, httpx.Client], settings: Settings
) -> None:
    a, b = two_apis
    sub, family = _family(settings, "family_erased_on_a")
    first = a.post("/api/profiles", json={"name": "Noa", "age": 7}, headers=family)
    assert first.status_code == 201, first.text
    assert _profile_ids(b, family) == [first.json()["id"]]  # both processes know its user id
    old = _user_row(settings, sub)

    erased = a.request("DELETE", "/api/me", json=ERASE, headers=family)
    assert erased.status_code == 200, erased.text
    assert _user_row(settings, sub) is None

    created = b.post("/api/profiles", json={"name": "Ada", "age": 5}, headers=family)
    assert created.status_code == 201, created.text
    new = _user_row(settings, sub)
    assert new is not None and new != old
    assert _owner_of(settings, created.json()["id"]) == new
    for client in (a, b):
        assert _profile_ids(client, family) == [created.json()["id"]]


def test_the_other_process_reads_the_new_family_not_the_erased_one(
    two_apis: tuple[httpx.Client, httpx.Client], settings: Settings
) -> None:
    """Reads have no fallback: only the erasure's notice makes ``b`` forget the deleted id (a
    process keeping it would list nothing, for good, while ``a`` lists the new profile)."""
    a, b = two_apis
    _sub, family = _family(settings, "family_read_on_b")
    assert _profile_ids(b, family) == []  # b knows the user id
    assert a.request("DELETE", "/api/me", json=ERASE, headers=family).status_code == 200
    created = a.post("/api/profiles", json={"name": "Lou", "age": 4}, headers=family)
    assert created.status_code == 201, created.text

    deadline = time.monotonic() + 5  # the notice travels through Redis, not with the answer
    while _profile_ids(b, family) != [created.json()["id"]]:
        assert time.monotonic() < deadline, "b still reads with the erased user id"
        time.sleep(0.05)
