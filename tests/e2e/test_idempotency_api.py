"""``Idempotency-Key`` over HTTP (CONTRACT §12): a retried request acts once and gets its answer.

The client here is httpx on the app in the test's own event loop (not Litestar's test client,
which serves one request at a time), so ``asyncio.gather`` sends truly concurrent requests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from faults import FailingCall
from session_samples import csrf_headers, parent_setup

from adapters.container import Container
from adapters.eventlog import stream_name
from adapters.settings import Settings
from api.app import create_app
from api.deps import Services
from api.idempotency import MSG_KEY, MSG_REUSED, MSG_RUNNING
from domain.clock import FakeClock
from domain.codec import decode
from services import catalog, policy, sessions
from services.container import build_container
from services.idempotency import RECORD_TTL_SECONDS, RUNNING_PREFIX, record_key, scope_digest

Auth = Callable[..., dict[str, str]]


@pytest.fixture
async def served(settings: Settings, clock: FakeClock) -> AsyncIterator[Container]:
    container = build_container(settings, clock=clock)
    yield container
    await container.close()


@pytest.fixture
async def client(served: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(served.settings, container=served)
    app.state.services = Services(served)  # what the lifespan does (it is bound to one task)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _record(container: Container, digest: str) -> str:
    """The key of the record of ``digest``: on the shard of the command that stored it."""
    for shard in range(container.events.shards):
        if await container.redis.exists(record_key(digest, shard)):
            return record_key(digest, shard)
    raise AssertionError(f"no record of {digest}")


def _key() -> str:
    return f"retry-{secrets.token_hex(8)}"


async def _events(container: Container, kind: str, **match: Any) -> list[Any]:
    """Events of type ``kind`` in the log whose fields equal ``match``."""
    found = []
    entries = []
    for shard in range(container.events.shards):
        entries += await container.redis.xrange(stream_name(shard))
    for _id, fields in entries:
        if fields[b"t"].decode() != kind:
            continue
        event = decode(kind, int(fields[b"v"]), fields[b"d"])
        if all(getattr(event, name) == value for name, value in match.items()):
            found.append(event)
    return found


async def _profiles(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    listed = await client.get("/api/profiles", params={"limit": 100}, headers=headers)
    profiles: list[dict[str, Any]] = listed.json()["profiles"]
    return profiles


def _crashing_after(command: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``command`` that commits, then fails as a process killed before answering would."""

    async def then_crash(*args: Any, **kwargs: Any) -> Any:
        await command(*args, **kwargs)
        raise RuntimeError("killed after commit")

    return then_crash


def _assert_replay_of(first: httpx.Response, again: httpx.Response) -> None:
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content)


async def _start_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    profile, videos = await parent_setup(client, headers)  # type: ignore[arg-type]
    return {"profile_id": profile["id"], "video_id": videos[0]}


# Sequential retries -----------------------------------------------------------------------------


async def test_retried_session_start_opens_one_session(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    headers = auth()
    ids = await _start_ids(client, headers)
    keyed = {**headers, "Idempotency-Key": _key()}
    first = await client.post("/api/sessions/start", json=ids, headers=keyed)
    assert first.status_code == 201, first.text
    again = await client.post("/api/sessions/start", json=ids, headers=keyed)
    _assert_replay_of(first, again)
    started = await _events(served, "session.started", profile_id=ids["profile_id"])
    assert [e.session_id for e in started] == [first.json()["session_id"]]


async def test_retried_end_ends_once_and_answers_the_same(
    client: httpx.AsyncClient, served: Container, auth: Auth, clock: FakeClock
) -> None:
    headers = auth()
    ids = await _start_ids(client, headers)
    sid = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()["session_id"]
    clock.advance(90)
    keyed = {**headers, "Idempotency-Key": _key()}
    first = await client.post(f"/api/sessions/{sid}/end", headers=keyed)
    assert first.status_code == 200, first.text
    clock.advance(30)  # a second end would say 120 s
    again = await client.post(f"/api/sessions/{sid}/end", headers=keyed)
    _assert_replay_of(first, again)
    assert len(await _events(served, "session.ended", session_id=sid)) == 1
    assert (await client.post(f"/api/sessions/{sid}/end", headers=headers)).status_code == 409


async def test_retried_progress_save_appends_one_event(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    sub = f"user_{secrets.token_hex(6)}"
    keyed = {**auth(sub), "Idempotency-Key": _key()}
    body = {"clerkId": sub, "tmdbId": "603", "currentTime": 42.5}
    first = await client.post("/api/progress", json=body, headers=keyed)
    assert first.status_code == 204, first.text
    again = await client.post("/api/progress", json=body, headers=keyed)
    _assert_replay_of(first, again)
    assert len(await _events(served, "progress.saved", clerk_id=sub)) == 1


async def test_retried_profile_create_creates_one_profile(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    first = await client.post("/api/profiles", json={"name": "Ada", "age": 7}, headers=keyed)
    assert first.status_code == 201, first.text
    again = await client.post("/api/profiles", json={"name": "Ada", "age": 7}, headers=keyed)
    _assert_replay_of(first, again)
    assert [p["id"] for p in await _profiles(client, headers)] == [first.json()["id"]]


async def _send_twice(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    """``method path`` sent twice under one key (the second is the retry of a lost answer);
    the first answer, after checking the second replays it."""
    keyed = {**headers, "Idempotency-Key": _key()}
    json = body or None
    first = await client.request(method, path, json=json, headers=keyed)
    assert first.status_code < 300, first.text
    again = await client.request(method, path, json=json, headers=keyed)
    _assert_replay_of(first, again)
    return first


async def test_retried_parent_actions_act_once(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    """CONTRACT §12: the parent actions of §13, and a request for more time, each once."""
    headers = auth()
    ids = await _start_ids(client, headers)
    pid = ids["profile_id"]
    sid = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()["session_id"]

    given = await _send_twice(client, "POST", f"/api/profiles/{pid}/bonus", headers, minutes=15)
    assert given.json()["bonus_minutes"] == 15  # not 30
    stopping = await _send_twice(client, "POST", f"/api/sessions/{sid}/stop", headers)
    assert stopping.json() == {"session_id": sid, "status": "stopping"}
    locked = await _send_twice(client, "POST", f"/api/profiles/{pid}/lock", headers, until=None)
    assert locked.json()["locked"] is True
    assert (
        await _send_twice(client, "DELETE", f"/api/profiles/{pid}/lock", headers)
    ).content == b""

    asked = await _send_twice(
        client, "POST", "/api/time-requests", headers, profile_id=pid, minutes=20
    )
    approve = f"/api/time-requests/{asked.json()['request_id']}/approve"
    approved = await _send_twice(client, "POST", approve, headers, minutes=10)
    assert (approved.json()["status"], approved.json()["granted_minutes"]) == ("approved", 10)
    again = await client.post(
        "/api/time-requests", json={"profile_id": pid, "minutes": 5}, headers=headers
    )
    denied = await _send_twice(
        client, "POST", f"/api/time-requests/{again.json()['request_id']}/deny", headers
    )
    assert denied.json()["status"] == "denied"

    for kind, count in [
        ("profile.bonus_granted", 2),  # the parent's 15 and the approved 10
        ("session.stop_requested", 1),
        ("profile.locked", 1),
        ("profile.unlocked", 1),
        ("time_request.created", 2),
        ("time_request.decided", 2),
    ]:
        assert len(await _events(served, kind, profile_id=pid)) == count, kind
    bonus = await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 1}, headers=headers)
    assert bonus.json()["bonus_minutes"] == 15 + 10 + 1


async def test_retried_pairing_and_revocation_act_once(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    """A parent's app that lost the answer to its confirmation of a TV's code gets the device
    again, not "Unknown or expired code" (the code was used by the first attempt)."""
    if served.settings.redis_cluster:
        pytest.skip("pairing answers 501 on a Redis Cluster (tests/e2e/test_cluster_pairing.py)")
    headers = auth()
    pid = (await _start_ids(client, headers))["profile_id"]
    pairing = (await client.post("/api/devices/pair")).json()
    path = f"/api/profiles/{pid}/devices"
    paired = await _send_twice(
        client, "POST", path, headers, user_code=pairing["user_code"], name="TV"
    )
    assert paired.status_code == 201
    device_id = paired.json()["device_id"]
    revoked = await _send_twice(client, "DELETE", f"{path}/{device_id}", headers)
    assert revoked.status_code == 204
    assert len(await _events(served, "device.paired", device_id=device_id)) == 1
    assert len(await _events(served, "device.revoked", device_id=device_id)) == 1
    assert (await client.delete(f"{path}/{device_id}", headers=headers)).status_code == 404


async def test_a_crash_after_a_parent_action_committed_replays_it(
    client: httpx.AsyncClient, served: Container, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bonus and the approval were committed with their answers, then the process failed
    before answering: the retries replay them, and no minutes are given twice."""
    headers = auth()
    pid = (await _start_ids(client, headers))["profile_id"]
    asked = await client.post(
        "/api/time-requests", json={"profile_id": pid, "minutes": 20}, headers=headers
    )
    approve = f"/api/time-requests/{asked.json()['request_id']}/approve"
    monkeypatch.setattr(policy, "grant_bonus", _crashing_after(policy.grant_bonus))
    monkeypatch.setattr(policy, "decide_time_request", _crashing_after(policy.decide_time_request))
    bonus_key, approve_key = _key(), _key()
    for _ in range(2):  # the crash itself is a 500; the retries replay the committed answer
        given = await client.post(
            f"/api/profiles/{pid}/bonus",
            json={"minutes": 15},
            headers={**headers, "Idempotency-Key": bonus_key},
        )
        approved = await client.post(approve, headers={**headers, "Idempotency-Key": approve_key})
    monkeypatch.undo()
    assert given.status_code == 201 and given.headers["idempotent-replayed"] == "true"
    assert given.json()["bonus_minutes"] == 15
    assert approved.status_code == 200 and approved.headers["idempotent-replayed"] == "true"
    assert approved.json()["granted_minutes"] == 20
    assert len(await _events(served, "profile.bonus_granted", profile_id=pid)) == 2
    bonus = await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 1}, headers=headers)
    assert bonus.json()["bonus_minutes"] == 15 + 20 + 1


async def test_retried_video_create_and_upload_create_one_video_each(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    video = {"title": "Clip", "url": "https://example.com/clip.mp4"}
    first = await client.post("/api/videos", json=video, headers=keyed)
    again = await client.post("/api/videos", json=video, headers=keyed)
    _assert_replay_of(first, again)
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    upload_keyed = {**headers, "Idempotency-Key": _key()}
    files = {"video": ("a.mp4", mp4, "video/mp4")}
    form = {"title": "Upload"}
    up = await client.post("/api/videos/upload", files=files, data=form, headers=upload_keyed)
    assert up.status_code == 201, up.text
    up_again = await client.post("/api/videos/upload", files=files, data=form, headers=upload_keyed)
    _assert_replay_of(up, up_again)
    listed = (await client.get("/api/videos", headers=headers)).json()["videos"]
    assert sorted(v["id"] for v in listed) == sorted([first.json()["id"], up.json()["id"]])


async def test_public_start_is_scoped_to_the_client_address(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    headers = auth()
    ids = {**await _start_ids(client, headers)}
    await client.patch(
        f"/api/profiles/{ids['profile_id']}", json={"kids_mode": True}, headers=headers
    )
    device = {**await csrf_headers(client), "Idempotency-Key": _key()}  # type: ignore[arg-type]
    first = await client.post("/api/sessions/start/public", json=ids, headers=device)
    assert first.status_code == 201, first.text
    again = await client.post("/api/sessions/start/public", json=ids, headers=device)
    _assert_replay_of(first, again)
    assert len(await _events(served, "session.started", profile_id=ids["profile_id"])) == 1


# Concurrent twins -------------------------------------------------------------------------------


async def _twins(
    send: Callable[[], Awaitable[httpx.Response]], count: int = 6
) -> list[httpx.Response]:
    answers = await asyncio.gather(*(send() for _ in range(count)))
    assert {a.status_code for a in answers} <= {201, 204, 200, 409}, [a.text for a in answers]
    done = [a for a in answers if a.status_code != 409]
    assert len({a.content for a in done}) == 1  # whoever got an answer got the same one
    assert sum("idempotent-replayed" not in a.headers for a in done) == 1
    return answers


async def test_concurrent_twins_start_one_session(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    headers = auth()
    ids = await _start_ids(client, headers)
    keyed = {**headers, "Idempotency-Key": _key()}
    await _twins(lambda: client.post("/api/sessions/start", json=ids, headers=keyed))
    assert len(await _events(served, "session.started", profile_id=ids["profile_id"])) == 1


async def test_concurrent_twins_end_once(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    headers = auth()
    ids = await _start_ids(client, headers)
    sid = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()["session_id"]
    keyed = {**headers, "Idempotency-Key": _key()}
    await _twins(lambda: client.post(f"/api/sessions/{sid}/end", headers=keyed))
    assert len(await _events(served, "session.ended", session_id=sid)) == 1


async def test_concurrent_twins_save_progress_once(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    sub = f"user_{secrets.token_hex(6)}"
    keyed = {**auth(sub), "Idempotency-Key": _key()}
    body = {"clerkId": sub, "tmdbId": 7, "currentTime": 1.0}
    await _twins(lambda: client.post("/api/progress", json=body, headers=keyed))
    assert len(await _events(served, "progress.saved", clerk_id=sub)) == 1


async def test_concurrent_twins_create_one_profile(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    body = {"name": "Twin", "age": 5}
    await _twins(lambda: client.post("/api/profiles", json=body, headers=keyed))
    assert len(await _profiles(client, headers)) == 1


# What a key may not be used for -----------------------------------------------------------------


async def test_same_key_with_another_body_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    assert (
        await client.post("/api/profiles", json={"name": "Ada", "age": 7}, headers=keyed)
    ).status_code == 201
    other = await client.post("/api/profiles", json={"name": "Bob", "age": 7}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["error"]["message"] == MSG_REUSED
    assert len(await _profiles(client, headers)) == 1


async def test_same_key_on_another_route_is_422(client: httpx.AsyncClient, auth: Auth) -> None:
    sub = f"user_{secrets.token_hex(6)}"
    keyed = {**auth(sub), "Idempotency-Key": _key()}
    saved = await client.post(
        "/api/progress", json={"clerkId": sub, "tmdbId": "1", "currentTime": 3}, headers=keyed
    )
    assert saved.status_code == 204
    again = await client.post(
        "/api/progress", json={"clerkId": sub, "tmdbId": "1", "currentTime": 4}, headers=keyed
    )
    assert (again.status_code, again.json()) == (422, {"error": MSG_REUSED})


async def test_another_caller_with_the_same_key_acts_for_itself(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    key = _key()
    one, two = auth(), auth()
    body = {"name": "Same", "age": 4}
    first = await client.post("/api/profiles", json=body, headers={**one, "Idempotency-Key": key})
    other = await client.post("/api/profiles", json=body, headers={**two, "Idempotency-Key": key})
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["x" * 256, "tab\tkey", "caf\u00e9"])
async def test_invalid_keys_are_400_in_each_family(
    client: httpx.AsyncClient, auth: Auth, key: str
) -> None:
    sub = f"user_{secrets.token_hex(6)}"
    headers = {**auth(sub), "Idempotency-Key": key.encode("latin-1")}  # type: ignore[dict-item]
    profile = await client.post("/api/profiles", json={"name": "Ada", "age": 7}, headers=headers)
    assert profile.status_code == 400
    assert profile.json()["error"]["message"] == MSG_KEY
    save = await client.post(
        "/api/progress", json={"clerkId": sub, "tmdbId": "1", "currentTime": 3}, headers=headers
    )
    assert (save.status_code, save.json()) == (400, {"error": MSG_KEY})


async def test_a_key_without_a_credential_is_401_and_not_stored(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/api/profiles", json={"name": "Ada", "age": 7}, headers={"Idempotency-Key": "k"}
    )
    assert answer.status_code == 401


# Running, failing, crashing, expiring -------------------------------------------------------------


async def test_a_twin_of_a_running_request_is_409_until_it_answers(
    client: httpx.AsyncClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()
    create = catalog.create_profile

    async def slow_create(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await gate.wait()
        return await create(*args, **kwargs)

    monkeypatch.setattr(catalog, "create_profile", slow_create)
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    body = {"name": "Slow", "age": 6}
    first = asyncio.create_task(client.post("/api/profiles", json=body, headers=keyed))
    await asyncio.wait_for(entered.wait(), 10)
    twin = await client.post("/api/profiles", json=body, headers=keyed)
    assert twin.status_code == 409
    assert twin.json()["error"]["message"] == MSG_RUNNING
    gate.set()
    answered = await first
    assert answered.status_code == 201
    _assert_replay_of(answered, await client.post("/api/profiles", json=body, headers=keyed))
    assert len(await _profiles(client, headers)) == 1


async def test_a_held_marker_is_409_on_the_progress_route_in_its_family(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    sub, key = f"user_{secrets.token_hex(6)}", _key()
    await served.redis.set(RUNNING_PREFIX + scope_digest(f"sub:{sub}", key), "other", ex=60)
    save = await client.post(
        "/api/progress",
        json={"clerkId": sub, "tmdbId": "1", "currentTime": 3},
        headers={**auth(sub), "Idempotency-Key": key},
    )
    assert (save.status_code, save.json()) == (409, {"error": MSG_RUNNING})
    assert await _events(served, "progress.saved", clerk_id=sub) == []


async def test_a_5xx_is_not_stored_and_the_retry_runs(
    client: httpx.AsyncClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    hiccup = RuntimeError("database hiccup")
    monkeypatch.setattr(catalog, "create_profile", FailingCall(catalog.create_profile, 1, hiccup))
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    body = {"name": "Retry", "age": 9}
    assert (await client.post("/api/profiles", json=body, headers=keyed)).status_code == 500
    retried = await client.post("/api/profiles", json=body, headers=keyed)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert len(await _profiles(client, headers)) == 1


async def test_an_error_that_changed_nothing_is_replayed(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    headers = auth()
    ids = await _start_ids(client, headers)
    keyed = {**headers, "Idempotency-Key": _key()}
    missing = {**ids, "video_id": 2**62}
    first = await client.post("/api/sessions/start", json=missing, headers=keyed)
    assert first.status_code == 404
    _assert_replay_of(first, await client.post("/api/sessions/start", json=missing, headers=keyed))


async def test_a_crash_after_the_commit_replays_instead_of_acting_twice(
    client: httpx.AsyncClient, served: Container, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The effect and its answer were committed, then the process failed before answering."""
    headers = auth()
    ids = await _start_ids(client, headers)
    monkeypatch.setattr(catalog, "create_profile", _crashing_after(catalog.create_profile))
    monkeypatch.setattr(sessions, "start_session", _crashing_after(sessions.start_session))
    profile_key, start_key = _key(), _key()
    body = {"name": "Crash", "age": 3}
    for _ in range(2):  # the crash itself is a 500; the retries replay the committed answer
        created = await client.post(
            "/api/profiles", json=body, headers={**headers, "Idempotency-Key": profile_key}
        )
        started = await client.post(
            "/api/sessions/start", json=ids, headers={**headers, "Idempotency-Key": start_key}
        )
    monkeypatch.undo()
    assert created.status_code == 201 and created.headers["idempotent-replayed"] == "true"
    assert started.status_code == 201 and started.headers["idempotent-replayed"] == "true"
    assert [p["name"] for p in await _profiles(client, headers)] == ["Timmy", "Crash"]
    assert len(await _events(served, "session.started", profile_id=ids["profile_id"])) == 1


async def test_redis_records_expire_after_24_hours(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    sub, key = f"user_{secrets.token_hex(6)}", _key()
    body = {"clerkId": sub, "tmdbId": "1", "currentTime": 3}
    await client.post("/api/progress", json=body, headers={**auth(sub), "Idempotency-Key": key})
    ttl = await served.redis.ttl(await _record(served, scope_digest(f"sub:{sub}", key)))
    assert RECORD_TTL_SECONDS - 60 < ttl <= RECORD_TTL_SECONDS


async def test_sql_records_expire_after_24_hours(
    client: httpx.AsyncClient, auth: Auth, clock: FakeClock
) -> None:
    headers = auth()
    keyed = {**headers, "Idempotency-Key": _key()}
    body = {"name": "Daily", "age": 8}
    first = await client.post("/api/profiles", json=body, headers=keyed)
    clock.advance(RECORD_TTL_SECONDS - 1)
    assert (await client.post("/api/profiles", json=body, headers=keyed)).headers[
        "idempotent-replayed"
    ] == "true"
    clock.advance(2)
    later = await client.post("/api/profiles", json=body, headers=keyed)
    assert later.status_code == 201 and "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]


async def test_a_progress_error_is_replayed_and_binds_its_key(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    sub = f"user_{secrets.token_hex(6)}"
    keyed = {**auth(sub), "Idempotency-Key": _key()}
    foreign = {"clerkId": "someone_else", "tmdbId": "1", "currentTime": 3}
    first = await client.post("/api/progress", json=foreign, headers=keyed)
    assert first.status_code == 403
    _assert_replay_of(first, await client.post("/api/progress", json=foreign, headers=keyed))
    own = {"clerkId": sub, "tmdbId": "1", "currentTime": 3}
    reused = await client.post("/api/progress", json=own, headers=keyed)
    assert (reused.status_code, reused.json()) == (422, {"error": MSG_REUSED})
    assert await _events(served, "progress.saved", clerk_id=sub) == []


async def test_a_body_the_route_ignores_still_binds_the_key(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """The end takes no body; a client that sends one anyway is fingerprinted with it."""
    headers = auth()
    ids = await _start_ids(client, headers)
    sid = (await client.post("/api/sessions/start", json=ids, headers=headers)).json()["session_id"]
    keyed = {**headers, "Idempotency-Key": _key()}
    first = await client.post(f"/api/sessions/{sid}/end", json={}, headers=keyed)
    _assert_replay_of(first, await client.post(f"/api/sessions/{sid}/end", json={}, headers=keyed))
    other = await client.post(f"/api/sessions/{sid}/end", json={"x": 1}, headers=keyed)
    assert other.status_code == 422


async def test_replays_count_against_the_rate_limit(served: Container, auth: Auth) -> None:
    """The guards run before the key is looked at: a retry loop cannot outrun the limit."""
    tuned = msgspec.structs.replace(
        served.settings, rate_limit_enabled=True, rate_limit_telemetry="2/60"
    )
    app = create_app(tuned, container=served)
    app.state.services = Services(served)
    sub = f"user_{secrets.token_hex(6)}"
    keyed = {**auth(sub), "Idempotency-Key": _key()}
    body = {"clerkId": sub, "tmdbId": "1", "currentTime": 3}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        codes = [
            (await c.post("/api/progress", json=body, headers=keyed)).status_code for _ in range(3)
        ]
    assert codes == [204, 204, 429]


async def test_a_stored_answer_is_sealed_by_its_key(
    client: httpx.AsyncClient, served: Container, auth: Auth
) -> None:
    """The record of a start holds the session token, readable only with the key itself."""
    sub, key = f"user_{secrets.token_hex(6)}", _key()
    headers = auth(sub)
    ids = await _start_ids(client, headers)
    started = await client.post(
        "/api/sessions/start", json=ids, headers={**headers, "Idempotency-Key": key}
    )
    stored = await served.redis.get(await _record(served, scope_digest(f"sub:{sub}", key)))
    assert stored is not None
    assert started.json()["session_token"].encode() not in stored
    assert b"session_token" not in stored
