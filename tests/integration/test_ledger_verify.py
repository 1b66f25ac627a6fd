"""``medio replay --verify`` covers the day's ledger: a policy day projected live verifies
clean, and a damaged ``day_ledger`` row is reported (on Postgres and on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from projector_env import Stack
from session_samples import Auth, clocked_client, parent_setup

from adapters.container import Container
from adapters.tables import day_ledger
from domain.clock import FakeClock
from projections.replay import verify
from projections.runtime import project_pending
from services.container import build_container

MONDAY_NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


async def _policy_day(stack: Stack, auth: Auth) -> int:
    """A day with every kind of ledger entry, through the API; the profile's id."""
    clock = FakeClock(MONDAY_NOON)
    async with clocked_client(stack.settings, clock) as (client, _settings):
        parent = auth()
        profile, videos = await parent_setup(client, parent, timezone="UTC", daily_limit_minutes=1)
        pid = profile["id"]
        start = {"profile_id": pid, "video_id": videos[0]}
        started = (await client.post("/api/sessions/start", json=start, headers=parent)).json()
        sid, child = started["session_id"], {"X-Session-Token": started["session_token"]}
        await client.post(f"/api/sessions/{sid}/stop", headers=parent)
        clock.advance(20)
        assert (await client.post(f"/api/sessions/{sid}/heartbeat", headers=child)).json()[
            "status"
        ] == "stopped"
        await client.post(f"/api/profiles/{pid}/bonus", json={"minutes": 3}, headers=parent)
        await client.post(f"/api/profiles/{pid}/lock", json={"until": None}, headers=parent)
        await client.delete(f"/api/profiles/{pid}/lock", headers=parent)
        asked = await client.post("/api/time-requests", json={"minutes": 5}, headers=child)
        rid = asked.json()["request_id"]
        await client.post(f"/api/time-requests/{rid}/deny", headers=parent)
        patch = {"bedtime": {"start": "21:00", "end": "07:00"}}
        assert (await client.patch(f"/api/profiles/{pid}", json=patch, headers=parent)).is_success
    return int(pid)


async def _ledger_types(container: Container, pid: int) -> list[str]:
    async with container.engine.connect() as conn:
        found = await conn.execute(
            sa.select(day_ledger.c.type)
            .where(day_ledger.c.profile_id == pid)
            .order_by(day_ledger.c.entry_ms, day_ledger.c.entry_seq)
        )
        return list(found.scalars())


@pytest.fixture(params=["stack", "sqlite_stack"], ids=["postgres", "sqlite"])
def either_stack(request: pytest.FixtureRequest) -> Stack:
    stack: Stack = request.getfixturevalue(request.param)
    return stack


async def test_verify_reports_a_damaged_ledger_row(either_stack: Stack, auth: Auth) -> None:
    stack = either_stack
    pid = await _policy_day(stack, auth)
    container = build_container(stack.settings)
    try:
        await project_pending(container)
        assert await _ledger_types(container, pid) == [
            "policy_changed",
            "stop_requested",
            "cut_off",
            "bonus",
            "locked",
            "unlocked",
            "time_requested",
            "time_request_denied",
            "policy_changed",
        ]
        assert (await verify(container)).differences == {}

        async with container.engine.begin() as conn:  # a bonus that now reads 30 minutes
            await conn.execute(
                day_ledger.update()
                .where(day_ledger.c.profile_id == pid, day_ledger.c.type == "bonus")
                .values(data='{"minutes":30,"total_minutes":30}')
            )
        report = await verify(container)
        assert list(report.differences) == ["ledger"]
        assert any("total_minutes" in line for line in report.differences["ledger"])

        async with container.engine.begin() as conn:  # and a cut-off lost
            await conn.execute(day_ledger.delete().where(day_ledger.c.type == "cut_off"))
        lines = (await verify(container, ["ledger"])).differences["ledger"]
        assert any("cut_off" in line for line in lines), lines
    finally:
        await container.close()
