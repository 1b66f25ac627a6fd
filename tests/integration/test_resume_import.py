"""``medio progress import`` on keys written the way the Express service wrote them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from resume_env import LEGACY_TTL, legacy_save

from adapters.container import Container
from domain.progress import epoch_ms
from domain.timestamps import iso_ms
from medio.cli import main
from projections.resume import index_key, listed_positions
from services.progress_import import import_express_keys, read_legacy, split_key

Drain = Callable[[], Awaitable[int]]


@pytest.fixture
def clerk() -> str:
    return f"user_{secrets.token_hex(6)}"


async def express_save(
    redis: Redis, clerk: str, tmdb: str, seconds: float, age: timedelta = timedelta(0)
) -> tuple[str, bytes]:
    """``SET resume:{clerk}:{tmdb} <json> EX <30 days - age>``, as Express did ``age`` ago."""
    return await legacy_save(redis, f"resume:{clerk}:{tmdb}", {"currentTime": seconds}, age)


async def test_imported_keys_are_listed_newest_first_with_values_unchanged(
    container: Container, drain: Drain, clerk: str
) -> None:
    redis = container.redis
    key_a, value_a = await express_save(redis, clerk, "550", 3600, age=timedelta(days=2))
    key_b, value_b = await express_save(redis, clerk, "1399", 120.5)
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []
    expiry_a = await redis.pexpiretime(key_a)

    report = await import_express_keys(container)
    assert report.imported >= 2
    await drain()

    listed = (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries
    assert [(e.tmdb_id, e.current_time) for e in listed] == [("1399", 120.5), ("550", 3600)]
    assert await redis.get(key_a) == value_a and await redis.get(key_b) == value_b
    updated_a = json.loads(value_a)["updatedAt"]
    assert (
        await redis.pexpiretime(key_a)
        == epoch_ms(datetime.fromisoformat(updated_a)) + LEGACY_TTL * 1000
    )
    assert abs(await redis.pexpiretime(key_a) - expiry_a) < 2000


async def test_second_run_imports_nothing(container: Container, drain: Drain, clerk: str) -> None:
    await express_save(container.redis, clerk, "1", 10)
    assert (await import_express_keys(container)).imported >= 1
    await drain()
    again = await import_express_keys(container)
    assert again.imported == 0
    assert again.already_indexed >= 1


async def test_a_newer_save_is_not_overwritten_by_the_import(
    container: Container, drain: Drain, clerk: str
) -> None:
    redis = container.redis
    await express_save(redis, clerk, "1", 10, age=timedelta(days=1))
    # A newer position indexed by the projector (as after a save through the new API).
    await redis.zadd(index_key(clerk), {"1": epoch_ms(datetime.now(UTC))})
    report = await import_express_keys(container)
    assert report.already_indexed >= 1
    await drain()
    assert await redis.zscore(index_key(clerk), "1") > epoch_ms(datetime.now(UTC)) - 60_000
    await redis.delete(index_key(clerk), f"resume:{clerk}:1")  # written without an event


async def test_dry_run_appends_nothing(container: Container, drain: Drain, clerk: str) -> None:
    await drain()
    await express_save(container.redis, clerk, "1", 10)
    report = await import_express_keys(container, dry_run=True)
    assert report.imported >= 1
    assert await drain() == 0
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_unreadable_and_lapsed_keys_are_counted_and_left_alone(
    container: Container, drain: Drain, clerk: str
) -> None:
    redis = container.redis
    await redis.set(f"resume:{clerk}:bad", "not json", ex=LEGACY_TTL)
    old = iso_ms(datetime.now(UTC) - timedelta(days=31))
    await redis.set(f"resume:{clerk}:old", json.dumps({"currentTime": 1, "updatedAt": old}))
    report = await import_express_keys(container)
    assert f"resume:{clerk}:bad" in report.unreadable
    assert report.lapsed >= 1
    await drain()
    assert await redis.get(f"resume:{clerk}:bad") == b"not json"
    assert await redis.exists(f"resume:{clerk}:old") == 1
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []
    await redis.delete(f"resume:{clerk}:bad", f"resume:{clerk}:old")


def test_key_names_split_at_the_first_colon_after_the_prefix() -> None:
    assert split_key("resume:user_1:550") == ("user_1", "550")
    assert split_key("resume:user_1:tv:12") == ("user_1", "tv:12")
    assert split_key("resume:user_1") is None
    assert split_key("resume::550") is None
    assert split_key("resume-index:user_1") is None


def test_value_without_updated_at_is_dated_30_days_before_its_expiry() -> None:
    expire = datetime(2026, 1, 31, tzinfo=UTC)
    legacy = read_legacy("resume:u:1", b'{"currentTime": 5}', epoch_ms(expire))
    assert legacy is not None
    assert legacy.occurred_at == expire - timedelta(days=30)
    assert read_legacy("resume:u:1", b'{"currentTime": 5}', -1) is None
    assert read_legacy("resume:u:1", b'{"currentTime": -5, "updatedAt": "x"}', -1) is None


def test_cli_reports_what_it_imported(settings: object) -> None:
    result = CliRunner().invoke(main, ["progress", "import", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "scanned" in result.output and "would import" in result.output
