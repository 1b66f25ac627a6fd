"""A family's data (CONTRACT §15): a family watches, saves progress and series progress, pairs
a device, sets its children's policy, gives a bonus, locks and unlocks, and a child asks for
time; the export holds it, and after an erasure no byte of it is
left in Postgres (every table), Redis (every key and stream entry), the media root or a new
export; the feed shows its events erased in place; another family is untouched; replay
--verify is clean. The same for one child's profile.

Runs on stores of its own (``isolated_stack``), so "every table" and "every key" are this
test's alone and verify compares nothing another test left behind.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from session_samples import played_session

from adapters.container import Container
from adapters.settings import Settings
from api.app import create_app
from api.auth import create_token
from projections.replay import verify
from projections.runtime import project_pending
from services.container import build_container
from services.policy import policy_key, request_index, used_key
from tests.integration.projector_env import isolated_stack

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 64
Client = AsyncTestClient[Litestar]


@dataclass
class World:
    settings: Settings
    client: Client
    container: Container

    def headers(self, sub: str, role: str = "parent") -> dict[str, str]:
        token = create_token(self.settings, sub, role, 3600)  # type: ignore[arg-type]
        return {"Authorization": f"Bearer {token}"}

    async def drain(self) -> None:
        await project_pending(self.container)


@pytest.fixture
def own_stack(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    with isolated_stack(media_root=str(tmp_path / "media")) as stack:
        yield stack.settings


@pytest.fixture
async def world(own_stack: Settings) -> AsyncIterator[World]:
    container = build_container(own_stack)
    async with AsyncTestClient(app=create_app(own_stack)) as client:
        yield World(own_stack, client, container)
    await container.close()


@dataclass
class Family:
    sub: str
    headers: dict[str, str]
    profiles: list[dict[str, Any]]
    needles: list[str]  # what must be gone after its erasure


async def _family(world: World, children: int = 1) -> Family:
    tag = secrets.token_hex(5)
    sub = f"user_{tag}"
    headers = world.headers(sub)
    client = world.client
    needles = [sub]
    upload = await client.post(
        "/api/videos/upload",
        files={"video": ("home.mp4", MP4, "video/mp4")},
        data={"title": f"Upload {tag}"},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    video = await client.post(
        "/api/videos",
        json={"title": f"Watched {tag}", "url": f"https://example.com/{tag}.mp4"},
        headers=headers,
    )
    assert video.status_code == 201, video.text
    needles += [f"Upload {tag}", f"Watched {tag}", upload.json()["file_path"]]
    profiles = []
    for n in range(children):
        name = f"Kid{n}{tag}"
        made = await client.post(
            "/api/profiles", json={"name": name, "age": 7, "kids_mode": True}, headers=headers
        )
        assert made.status_code == 201, made.text
        profiles.append(made.json())
        needles.append(name)
        pairing = (await client.post("/api/devices/pair")).json()
        device = {"user_code": pairing["user_code"], "name": f"Tablet{n}{tag}"}
        paired = await client.post(
            f"/api/profiles/{made.json()['id']}/devices", json=device, headers=headers
        )
        assert paired.status_code == 201, paired.text
        needles.append(device["name"])
        started = await played_session(
            client, headers, made.json()["id"], video.json()["id"], position=30
        )
        message = f"Please{n}{tag}"  # the child's words: personal data
        await _policy(world, made.json()["id"], started["session_token"], headers, message)
        needles.append(message)
    title, series = f"tt{tag}", f"show{tag}"
    saved = await client.post(
        "/api/progress", json={"clerkId": sub, "tmdbId": title, "currentTime": 42}, headers=headers
    )
    assert saved.status_code == 204, saved.text
    episode = {"clerkId": sub, "seriesId": series, "tmdbId": f"ep{tag}", "currentTime": 7}
    saved = await client.post("/api/progress/series", json=episode, headers=headers)
    assert saved.status_code == 204, saved.text
    needles += [title, series, f"ep{tag}"]
    await world.drain()
    return Family(sub, headers, profiles, needles)


async def _policy(
    world: World, profile_id: int, session_token: str, headers: dict[str, str], message: str
) -> None:
    """The parent's policy actions on one child, and the child's request for time."""
    client = world.client
    policy = {"bedtime": {"start": "20:30", "end": "07:00"}, "weekday_limits": {"sunday": 90}}
    changed = await client.patch(f"/api/profiles/{profile_id}", json=policy, headers=headers)
    assert changed.status_code == 200, changed.text
    bonus = await client.post(
        f"/api/profiles/{profile_id}/bonus", json={"minutes": 15}, headers=headers
    )
    assert bonus.status_code == 201, bonus.text
    locked = await client.post(f"/api/profiles/{profile_id}/lock", json={}, headers=headers)
    assert locked.status_code == 200, locked.text
    unlocked = await client.delete(f"/api/profiles/{profile_id}/lock", headers=headers)
    assert unlocked.status_code == 204, unlocked.text
    asked = await client.post(
        "/api/time-requests",
        json={"minutes": 10, "message": message},
        headers={"X-Session-Token": session_token},
    )
    assert asked.status_code == 201, asked.text
    approved = await client.post(
        f"/api/time-requests/{asked.json()['request_id']}/approve", headers=headers
    )
    assert approved.status_code == 200, approved.text


async def _postgres_text(world: World) -> str:
    """Every row of every table, as text."""
    async with world.container.engine.connect() as conn:
        names = await conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        )
        dump = []
        for (name,) in names.all():
            rows = await conn.execute(sa.text(f'SELECT t::text FROM "{name}" t'))
            dump += [f"{name}: {row}" for (row,) in rows]
    return "\n".join(dump)


async def _redis_text(world: World) -> str:
    """Every key's name and value (streams entry by entry), as text."""
    redis = world.container.redis
    dump: list[str] = []
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = kind
        dump.append(f"{key!r} {value!r}")
    return "\n".join(dump)


def _media_text(settings: Settings) -> str:
    root = settings.media_path
    if not root.exists():
        return ""
    return "\n".join(f"{p} {p.read_bytes()!r}" for p in root.rglob("*") if p.is_file())


async def _feed(world: World) -> list[dict[str, Any]]:
    analyst = world.headers("analyst_" + secrets.token_hex(3), role="analyst")
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await world.client.get(f"/api/events?after={after}&limit=1000", headers=analyst)
        assert page.status_code == 200, page.text
        found += page.json()["events"]
        if page.json()["next"] is None:
            return found
        after = page.json()["next"]


async def _stats(world: World, family: Family) -> list[Any]:
    return [
        (await world.client.get(f"/api/profiles/{p['id']}/stats", headers=family.headers)).json()
        for p in family.profiles
    ]


def _absent(needles: list[str], text: str, where: str) -> None:
    for needle in needles:
        assert needle not in text, f"{needle!r} is still in {where}"


async def test_erasing_a_family_leaves_no_byte_of_it_and_touches_no_one_else(
    world: World,
) -> None:
    erased, kept = await _family(world, children=2), await _family(world)
    export = await world.client.get("/api/me/export", headers=erased.headers)
    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"]
    for needle in erased.needles:
        assert needle in export.text, f"{needle!r} missing from the export"
    mine = [e["position"] for e in export.json()["events"]]
    assert {e["type"] for e in export.json()["events"]} >= {
        "session.started",
        "session.heartbeat",
        "progress.saved",
        "series_progress.saved",
        "profile.policy_set",
        "profile.bonus_granted",
        "profile.locked",
        "time_request.created",
        "time_request.decided",
    }
    assert export.json()["day_ledger"] and export.json()["time_requests"]
    assert all("asker" not in r for r in export.json()["time_requests"])
    kept_stats = await _stats(world, kept)
    feed_before = await _feed(world)
    kept_events = [e for e in feed_before if kept.sub in str(e["data"])]

    bad = await world.client.request("DELETE", "/api/me", json={}, headers=erased.headers)
    assert bad.status_code == 400
    done = await world.client.request(
        "DELETE", "/api/me", json={"confirm": "DELETE"}, headers=erased.headers
    )
    assert done.status_code == 200 and done.json() == {"status": "erased"}
    await world.drain()

    _absent(erased.needles, await _postgres_text(world), "Postgres")
    _absent(erased.needles, await _redis_text(world), "Redis")
    _absent(erased.needles, _media_text(world.settings), "the media root")
    again = await world.client.get("/api/me/export", headers=erased.headers)
    _absent(erased.needles[1:], again.text, "a new export")  # the sub is a new, empty user
    assert again.json()["profiles"] == [] and again.json()["events"] == []

    feed = await _feed(world)
    by_position = {e["position"]: e for e in feed}
    assert [by_position[p]["erased"] for p in mine] == [True] * len(mine)
    assert all(by_position[p]["data"] is None for p in mine)
    _absent(erased.needles, str(feed), "the feed")
    assert "privacy.erased" in {e["type"] for e in feed}
    assert [e for e in feed if kept.sub in str(e["data"])] == kept_events
    assert await _stats(world, kept) == kept_stats

    report = await verify(world.container)
    assert report.differences == {}


async def test_erasing_one_child_leaves_the_rest_of_the_family(world: World) -> None:
    family = await _family(world, children=2)
    gone, stays = family.profiles
    stays_stats = (
        await world.client.get(f"/api/profiles/{stays['id']}/stats", headers=family.headers)
    ).json()
    deleted = await world.client.delete(f"/api/profiles/{gone['id']}", headers=family.headers)
    assert deleted.status_code == 204
    await world.drain()

    for where, text in (
        ("Postgres", await _postgres_text(world)),
        ("Redis", await _redis_text(world)),
    ):
        _absent([gone["name"]], text, where)
        assert stays["name"] in text or where == "Redis"
    redis_text = await _redis_text(world)
    shard_of = world.container.events.shard_of
    gone_shard, stays_shard = shard_of(str(gone["id"])), shard_of(str(stays["id"]))
    for key in (policy_key(gone["id"], gone_shard), request_index(gone["id"], gone_shard)):
        assert f"'{key}'" not in redis_text
    assert f"'{used_key(gone['id'], '', gone_shard)}" not in redis_text  # any day's count
    assert f"'{policy_key(stays['id'], stays_shard)}'" in redis_text
    assert f'"profile_id":{gone["id"]}' not in str(await _feed(world)).replace(" ", "")
    read = await world.client.get(f"/api/profiles/{stays['id']}/stats", headers=family.headers)
    assert read.json() == stays_stats
    progress = await world.client.get(f"/api/progress/{family.sub}", headers=family.headers)
    assert len(progress.json()) == 1  # the family's own progress stays
    missing = await world.client.get(f"/api/profiles/{gone['id']}", headers=family.headers)
    assert missing.status_code == 404

    report = await verify(world.container)
    assert report.differences == {}
