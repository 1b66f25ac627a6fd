"""The series resume projection on a real Redis, fed hand-built envelopes as the runtime does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from resume_env import (
    DAY,
    SECOND,
    CommandRecorder,
    Feed,
    assert_clear_removes_every_key,
    assert_scratch_copy_leaves_live_keys,
    dump_alike_in_any_batching,
    own_prefix,
    projection_fixtures,
    recent,
)
from resume_env import series_deleted as deleted
from resume_env import series_saved as saved

from adapters.container import Container
from domain.events import AnyEvent
from domain.progress import epoch_ms
from domain.timestamps import iso_ms as iso
from projections.resume import listed_positions
from projections.series_resume import (
    USERS_KEY,
    SeriesEntry,
    SeriesPosition,
    SeriesResumeProjection,
    current_key,
    index_key,
    listed_series,
    read_episode,
    read_series,
    series_key,
    version_key,
)
from services.series_progress import get_series_list

clerk, live, feed = projection_fixtures(SeriesResumeProjection, USERS_KEY)


async def test_save_writes_the_origin_value_expiring_30_days_after_update(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "1399", "63056", at, current_time=61.5))
    key = series_key(clerk, "1399", "63056")
    raw = await container.redis.get(key)
    assert (
        raw
        == (
            f'{{"currentTime":61.5,"seriesId":"1399","tmdbId":"63056","updatedAt":"{iso(at)}"}}'
        ).encode()
    )
    assert await container.redis.pexpiretime(key) == epoch_ms(at + 30 * DAY)
    assert await container.redis.pexpiretime(current_key(clerk, "1399")) == epoch_ms(at + 30 * DAY)
    assert await container.redis.zscore(index_key(clerk), "1399") == epoch_ms(at)
    assert await read_series(container.pipeline, clerk, "1399") == SeriesPosition(
        61.5, "1399", "63056", iso(at)
    )


async def test_a_save_of_episode_b_removes_episode_a(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "s", "a", at))
    await feed(saved(clerk, "s", "b", at + SECOND, 5))
    assert await container.redis.exists(series_key(clerk, "s", "a")) == 0
    assert await read_episode(container.pipeline, clerk, "s", "a") is None
    current = await read_series(container.pipeline, clerk, "s")
    assert current is not None and (current.tmdb_id, current.current_time) == ("b", 5)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2), (1, 2, 0)])
async def test_newest_save_wins_whatever_the_batch_order(
    container: Container, feed: Feed, clerk: str, order: tuple[int, ...]
) -> None:
    at = recent()
    for split in (1, 2):  # the events in two batches, split after the first or the second
        series = f"s{split}"
        events = [
            saved(clerk, series, "a", at),
            saved(clerk, series, "b", at + 2 * SECOND),
            saved(clerk, series, "c", at + SECOND),
        ]
        chosen = [events[i] for i in order]
        await feed(*chosen[:split])
        await feed(*chosen[split:])
        current = await read_series(container.pipeline, clerk, series)
        assert current is not None and current.tmdb_id == "b", (order, split)
        for episode in ("a", "c"):
            assert await container.redis.exists(series_key(clerk, series, episode)) == 0


async def test_finished_save_removes_the_series_and_an_older_save_cannot_bring_it_back(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "s", "a", at), saved(clerk, "t", "x", at))
    await feed(saved(clerk, "s", "a", at + DAY / 24, 950, duration=1000, finished=True))
    assert await read_series(container.pipeline, clerk, "s") is None
    assert await container.redis.exists(series_key(clerk, "s", "a")) == 0
    await feed(saved(clerk, "s", "b", at + DAY / 48))
    assert await read_series(container.pipeline, clerk, "s") is None
    assert await container.redis.exists(series_key(clerk, "s", "b")) == 0
    listed = (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries
    assert [e.series_id for e in listed] == ["t"]


async def test_delete_removes_the_current_episode_and_a_later_save_restores_the_series(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "s", "a", at), deleted(clerk, "s", at))
    assert await container.redis.exists(series_key(clerk, "s", "a")) == 0
    assert await container.redis.exists(current_key(clerk, "s")) == 0
    await feed(saved(clerk, "s", "b", at + SECOND, 7))
    current = await read_series(container.pipeline, clerk, "s")
    assert current is not None and (current.tmdb_id, current.current_time) == ("b", 7)


async def test_event_whose_expiry_has_passed_creates_no_key(
    container: Container, feed: Feed, clerk: str
) -> None:
    await feed(saved(clerk, "old", "1", recent() - 31 * DAY))
    assert await container.redis.exists(series_key(clerk, "old", "1")) == 0
    assert await read_series(container.pipeline, clerk, "old") is None
    assert (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_list_is_newest_first_limited_and_skips_lapsed_series(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(
        saved(clerk, "a", "a1", at - 3 * DAY, 1),
        saved(clerk, "b", "b1", at - 1 * DAY, 2),
        saved(clerk, "c", "c1", at - 2 * DAY, 3),
    )
    listed = (await listed_series(container.pipeline, clerk, 100, datetime.now(UTC))).entries
    assert [e.series_id for e in listed] == ["b", "c", "a"]
    assert listed[0] == SeriesEntry("b", "b1", 2, iso(at - 1 * DAY))
    limited = (await listed_series(container.pipeline, clerk, 2, datetime.now(UTC))).entries
    assert [e.series_id for e in limited] == ["b", "c"]
    later = datetime.now(UTC) + timedelta(days=27, hours=12)  # "a" has lapsed by then
    assert [
        e.series_id for e in (await listed_series(container.pipeline, clerk, 100, later)).entries
    ] == [
        "b",
        "c",
    ]


async def test_list_reads_only_the_users_index_and_keys(
    container: Container, feed: Feed, clerk: str
) -> None:
    await feed(saved(clerk, "s", "1", recent()))
    recorder = CommandRecorder(container.pipeline)
    listed = (await listed_series(recorder, clerk, 100, datetime.now(UTC))).entries  # type: ignore[arg-type]
    assert [e.series_id for e in listed] == ["s"]
    assert recorder.calls == ["ZREVRANGEBYSCORE", "MGET", "MGET"]


async def test_series_never_reach_the_title_list(
    container: Container, feed: Feed, clerk: str
) -> None:
    await feed(saved(clerk, "s", "1", recent()))
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_series_30_days_older_than_the_users_newest_event_are_pruned(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(
        saved(clerk, "old", "1", at - 40 * DAY),
        deleted(clerk, "gone", at - 35 * DAY),
        saved(clerk, "new", "1", at),
    )
    assert await container.redis.zrange(index_key(clerk), 0, -1) == [b"new"]
    assert await container.redis.pexpiretime(index_key(clerk)) == epoch_ms(at + 30 * DAY)


async def test_dump_is_the_same_whatever_the_batch_boundaries(
    container: Container, clerk: str
) -> None:
    at = recent()
    other = clerk + "_2"
    events: list[AnyEvent] = [
        saved(clerk, "s1", "e1", at - 2 * DAY, 10),
        saved(other, "s9", "e1", at - DAY, 5),
        saved(clerk, "s2", "e1", at - DAY, 20),
        saved(clerk, "s1", "e2", at, 11),
        saved(clerk, "s1", "e0", at - DAY, 3),  # late and older: loses, its key never lives
        saved(clerk, "s2", "e1", at, 950, duration=1000, finished=True),
        deleted(other, "s9", at),
        saved(other, "s8", "e4", at, 1.5),
    ]
    one_batch = SeriesResumeProjection(scratch=True)
    one_by_one = SeriesResumeProjection(scratch=True)
    one_batch.prefix, one_by_one.prefix = f"a{clerk}:", f"b{clerk}:"
    dumped = await dump_alike_in_any_batching(container.redis, one_batch, one_by_one, events)
    assert dumped[series_key(clerk, "s1", "e2")][0] == (
        f'{{"currentTime":11,"seriesId":"s1","tmdbId":"e2","updatedAt":"{iso(at)}"}}'
    )
    assert dumped[current_key(other, "s8")] == ["e4", epoch_ms(at + 30 * DAY)]
    assert dumped[index_key(clerk)] == {"s1": epoch_ms(at), "s2": -epoch_ms(at)}
    for key in (series_key(clerk, "s1", "e0"), series_key(clerk, "s1", "e1")):
        assert key not in dumped
        assert await container.redis.exists(one_batch.key(key), one_by_one.key(key)) == 0
    await one_batch.clear(container.redis)
    await one_by_one.clear(container.redis)


async def test_clear_removes_every_key_the_projection_wrote(
    container: Container, clerk: str
) -> None:
    at = recent()
    await assert_clear_removes_every_key(
        container.redis,
        own_prefix(SeriesResumeProjection(scratch=True)),
        saved(clerk, "s1", "1", at),
        saved(clerk + "x", "s2", "2", at),
        saved(clerk, "s3", "3", at),
        deleted(clerk, "s3", at),
    )


async def test_scratch_copy_never_touches_live_keys(container: Container, clerk: str) -> None:
    await assert_scratch_copy_leaves_live_keys(
        container.redis,
        SeriesResumeProjection(scratch=True),
        saved(clerk, "s", "1", recent()),
        series_key(clerk, "s", "1"),
    )


async def test_a_kept_series_list_follows_every_change(
    container: Container, feed: Feed, clerk: str
) -> None:
    """``get_series_list`` through the process's list cache: a new episode, a delete and a
    save each show at the next read, and each event notes the user's list version."""
    at = recent()
    await feed(saved(clerk, "s1", "e1", at))
    await feed(saved(clerk, "s2", "e1", at + timedelta(seconds=1)))
    listed = await get_series_list(container, clerk, 100)
    assert [(e.series_id, e.tmdb_id) for e in listed] == [("s2", "e1"), ("s1", "e1")]
    await feed(saved(clerk, "s1", "e2", at + timedelta(seconds=2)))
    listed = await get_series_list(container, clerk, 100)
    assert [(e.series_id, e.tmdb_id) for e in listed] == [("s1", "e2"), ("s2", "e1")]
    await feed(deleted(clerk, "s2", at + timedelta(seconds=3)))
    assert [e.series_id for e in await get_series_list(container, clerk, 100)] == ["s1"]
    assert await container.redis.get(version_key(clerk, 0)) is not None
