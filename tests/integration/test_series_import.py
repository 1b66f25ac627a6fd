"""``medio progress import`` on series keys written the way the origin service wrote them."""

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
from projections.resume import listed_positions
from projections.series_resume import index_key, listed_series, read_series
from services.series_import import OriginValue, import_series_keys, read_origin, split_key

Drain = Callable[[], Awaitable[int]]


@pytest.fixture
def clerk() -> str:
    return f"user_{secrets.token_hex(6)}"


async def origin_save(
    redis: Redis,
    clerk: str,
    series: str | int,
    episode: str | int,
    seconds: float,
    age: timedelta = timedelta(0),
) -> tuple[str, bytes]:
    """``SET series_resume:{clerk}:{series}:{episode} <json> EX <30 days - age>``."""
    value = {"currentTime": seconds, "seriesId": series, "tmdbId": episode}
    return await legacy_save(redis, f"series_resume:{clerk}:{series}:{episode}", value, age)


async def test_imported_series_are_listed_newest_first_keeping_one_episode_each(
    container: Container, drain: Drain, clerk: str
) -> None:
    redis = container.redis
    await origin_save(redis, clerk, 1399, 63056, 600, age=timedelta(days=2))
    await origin_save(redis, clerk, 1399, 63057, 30, age=timedelta(days=1))  # the newer episode
    key_b, value_b = await origin_save(redis, clerk, "tv:66732", "s1e1", 120.5)
    assert (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []

    report = await import_series_keys(container)
    assert report.imported >= 3
    await drain()

    listed = (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries
    assert [(e.series_id, e.tmdb_id, e.current_time) for e in listed] == [
        ("tv:66732", "s1e1", 120.5),
        ("1399", "63057", 30),
    ]
    assert await redis.exists(f"series_resume:{clerk}:1399:63056") == 0
    assert await redis.get(key_b) == value_b
    current = await read_series(container.pipeline, clerk, "1399")
    assert current is not None and current.tmdb_id == "63057"
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_second_run_imports_nothing(container: Container, drain: Drain, clerk: str) -> None:
    await origin_save(container.redis, clerk, "s", "1", 10)
    assert (await import_series_keys(container)).imported >= 1
    await drain()
    again = await import_series_keys(container)
    assert again.imported == 0
    assert again.already_indexed >= 1


async def test_dry_run_appends_nothing(container: Container, drain: Drain, clerk: str) -> None:
    await drain()
    await origin_save(container.redis, clerk, "s", "1", 10)
    report = await import_series_keys(container, dry_run=True)
    assert report.imported >= 1
    assert await drain() == 0
    assert (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []
    await container.redis.delete(f"series_resume:{clerk}:s:1")


async def test_unreadable_and_lapsed_keys_are_counted_and_left_alone(
    container: Container, drain: Drain, clerk: str
) -> None:
    redis = container.redis
    bad, wrong = f"series_resume:{clerk}:s:bad", f"series_resume:{clerk}:s:wrong"
    await redis.set(bad, "not json", ex=LEGACY_TTL)
    await redis.set(wrong, '{"currentTime":1,"seriesId":"t","tmdbId":"wrong"}', ex=LEGACY_TTL)
    old = iso_ms(datetime.now(UTC) - timedelta(days=31))
    await redis.set(
        f"series_resume:{clerk}:s:old", json.dumps({"currentTime": 1, "updatedAt": old})
    )
    report = await import_series_keys(container)
    assert {bad, wrong} <= set(report.unreadable)
    assert report.lapsed >= 1
    await drain()
    assert await redis.get(bad) == b"not json"
    assert (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []
    await redis.delete(bad, wrong, f"series_resume:{clerk}:s:old")


def test_key_names_are_split_by_the_ids_the_value_names() -> None:
    named = OriginValue(1.0, series_id="tv:1", tmdb_id=55)
    assert split_key("series_resume:u:tv:1:55", named) == ("u", "tv:1", "55")
    assert split_key("series_resume:u:tv:1:56", named) is None
    anonymous = OriginValue(1.0)
    assert split_key("series_resume:u:1399:55", anonymous) == ("u", "1399", "55")
    assert split_key("series_resume:u:tv:1:55", anonymous) is None  # ambiguous
    assert split_key("series_resume::1:55", anonymous) is None
    assert split_key("series_resume-index:u", anonymous) is None


def test_value_without_updated_at_is_dated_30_days_before_its_expiry() -> None:
    expire = datetime(2026, 1, 31, tzinfo=UTC)
    origin = read_origin("series_resume:u:1:2", b'{"currentTime": 5}', epoch_ms(expire))
    assert origin is not None and origin.occurred_at == expire - timedelta(days=30)
    assert read_origin("series_resume:u:1:2", b'{"currentTime": 5}', -1) is None


async def test_an_indexed_newer_series_is_not_overwritten_by_the_import(
    container: Container, clerk: str
) -> None:
    redis = container.redis
    await origin_save(redis, clerk, "s", "1", 10, age=timedelta(days=1))
    await redis.zadd(index_key(clerk), {"s": epoch_ms(datetime.now(UTC))})
    report = await import_series_keys(container)
    assert report.already_indexed >= 1
    await redis.delete(index_key(clerk), f"series_resume:{clerk}:s:1")  # written without events


def test_cli_reports_both_kinds_of_keys(settings: object) -> None:
    result = CliRunner().invoke(main, ["progress", "import", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "resume keys: would import" in result.output
    assert "series_resume keys: would import" in result.output
