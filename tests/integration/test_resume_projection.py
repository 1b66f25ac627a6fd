"""The resume projection on a real Redis, fed hand-built envelopes the way the runtime does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from resume_env import (
    DAY,
    CommandRecorder,
    Feed,
    assert_clear_removes_every_key,
    assert_scratch_copy_leaves_live_keys,
    dump_alike_in_any_batching,
    envelopes,
    own_prefix,
    project,
    projection_fixtures,
    recent,
)
from resume_env import title_deleted as deleted
from resume_env import title_saved as saved

from adapters.container import Container
from adapters.settings import Settings
from domain.clock import FakeClock
from domain.events import AnyEvent
from domain.progress import epoch_ms
from domain.timestamps import iso_ms as iso
from projections.redis_batch import apply_redis
from projections.resume import (
    USERS_KEY,
    ResumeEntry,
    ResumeProjection,
    index_key,
    listed_positions,
    read_position,
    resume_key,
    version_key,
)
from services.progress import list_progress


async def current_time(container: Container, clerk: str, tmdb: str) -> float | None:
    """The title's saved ``currentTime``, or ``None`` when it has no position."""
    position = await read_position(container.pipeline, clerk, tmdb)
    return None if position is None else position.current_time


clerk, live, feed = projection_fixtures(ResumeProjection, USERS_KEY)


async def test_save_writes_express_value_expiring_30_days_after_update(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "550", at, current_time=3600))
    raw = await container.redis.get(resume_key(clerk, "550"))
    assert raw == f'{{"currentTime":3600,"updatedAt":"{iso(at)}"}}'.encode()
    expiry = await container.redis.pexpiretime(resume_key(clerk, "550"))
    assert expiry == epoch_ms(at + 30 * DAY)
    assert await container.redis.zscore(index_key(clerk), "550") == epoch_ms(at)


async def test_newer_save_overwrites_and_older_late_save_is_ignored(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "1", at, current_time=10))
    await feed(saved(clerk, "1", at + timedelta(seconds=5), 20))
    await feed(saved(clerk, "1", at + timedelta(seconds=2), 15))
    assert await current_time(container, clerk, "1") == 20


async def test_older_save_later_in_the_same_batch_is_ignored(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    newer, older = saved(clerk, "1", at, 50), saved(clerk, "1", at - timedelta(seconds=1), 40)
    await feed(newer, older)
    assert await current_time(container, clerk, "1") == 50


async def test_finished_save_removes_the_title_and_an_older_save_cannot_bring_it_back(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "1", at, 10))
    await feed(saved(clerk, "1", at + DAY / 24, 95, duration=100, finished=True))
    assert await read_position(container.pipeline, clerk, "1") is None
    await feed(saved(clerk, "1", at + DAY / 48, 50))
    assert await read_position(container.pipeline, clerk, "1") is None
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_delete_removes_the_key_and_a_later_save_restores_it(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "1", at), deleted(clerk, "1", at))
    assert await container.redis.exists(resume_key(clerk, "1")) == 0
    await feed(saved(clerk, "1", at + timedelta(seconds=1), 7))
    assert await current_time(container, clerk, "1") == 7


async def test_event_whose_expiry_has_passed_creates_no_key(
    container: Container, feed: Feed, clerk: str
) -> None:
    await feed(saved(clerk, "old", recent() - 31 * DAY))
    assert await container.redis.exists(resume_key(clerk, "old")) == 0
    assert (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries == []


async def test_list_is_newest_first_limited_and_skips_lapsed_entries(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(
        saved(clerk, "a", at - 3 * DAY, 1),
        saved(clerk, "b", at - 1 * DAY, 2),
        saved(clerk, "c", at - 2 * DAY, 3),
    )
    listed = (await listed_positions(container.pipeline, clerk, 100, datetime.now(UTC))).entries
    assert [e.tmdb_id for e in listed] == ["b", "c", "a"]
    assert listed[0] == ResumeEntry("b", 2, iso(at - 1 * DAY))
    limited = (await listed_positions(container.pipeline, clerk, 2, datetime.now(UTC))).entries
    assert [e.tmdb_id for e in limited] == ["b", "c"]
    # 27.5 days on, "a" (saved 3 days ago) has lapsed; "b" and "c" have not.
    later = datetime.now(UTC) + timedelta(days=27, hours=12)
    assert [
        e.tmdb_id for e in (await listed_positions(container.pipeline, clerk, 100, later)).entries
    ] == [
        "b",
        "c",
    ]


async def test_list_reads_only_the_users_index_and_keys(
    container: Container, feed: Feed, clerk: str
) -> None:
    await feed(saved(clerk, "a", recent()))
    recorder = CommandRecorder(container.pipeline)
    listed = (await listed_positions(recorder, clerk, 100, datetime.now(UTC))).entries  # type: ignore[arg-type]
    assert [e.tmdb_id for e in listed] == ["a"]
    assert recorder.calls == ["ZREVRANGEBYSCORE", "MGET"]


async def test_entries_30_days_older_than_the_users_newest_event_are_pruned(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(
        saved(clerk, "old", at - 40 * DAY),
        deleted(clerk, "gone", at - 35 * DAY),
        saved(clerk, "new", at),
    )
    assert await container.redis.zrange(index_key(clerk), 0, -1) == [b"new"]
    assert await container.redis.pexpiretime(index_key(clerk)) == epoch_ms(at + 30 * DAY)


async def test_entry_arriving_after_a_much_newer_one_is_pruned_at_once(
    container: Container, feed: Feed, clerk: str
) -> None:
    at = recent()
    await feed(saved(clerk, "new", at))
    await feed(saved(clerk, "imported", at - 31 * DAY))
    assert await container.redis.zrange(index_key(clerk), 0, -1) == [b"new"]
    assert await container.redis.pexpiretime(index_key(clerk)) == epoch_ms(at + 30 * DAY)


async def test_dump_is_the_same_whatever_the_batch_boundaries(
    container: Container, clerk: str
) -> None:
    at = recent()
    other = clerk + "_2"
    events: list[AnyEvent] = [
        saved(clerk, "1", at - 2 * DAY, 10),
        saved(other, "9", at - DAY, 5),
        saved(clerk, "2", at - DAY, 20),
        saved(clerk, "1", at, 11),
        saved(clerk, "2", at, 95, duration=100, finished=True),
        deleted(other, "9", at),
        saved(other, "8", at, 1.5),
    ]
    one_batch, one_by_one = ResumeProjection(scratch=True), ResumeProjection(scratch=True)
    one_batch.prefix, one_by_one.prefix = f"a{clerk}:", f"b{clerk}:"
    dumped = await dump_alike_in_any_batching(container.redis, one_batch, one_by_one, events)
    assert dumped[resume_key(clerk, "1")][0] == (f'{{"currentTime":11,"updatedAt":"{iso(at)}"}}')
    assert dumped[resume_key(other, "8")][1] == epoch_ms(at + 30 * DAY)
    assert dumped[index_key(clerk)] == {"1": epoch_ms(at), "2": -epoch_ms(at)}
    assert resume_key(clerk, "2") not in dumped and resume_key(other, "9") not in dumped


async def test_clear_removes_every_key_the_projection_wrote(
    container: Container, clerk: str
) -> None:
    at = recent()
    await assert_clear_removes_every_key(
        container.redis,
        own_prefix(ResumeProjection(scratch=True)),
        saved(clerk, "1", at),
        saved(clerk + "x", "2", at),
        deleted(clerk, "3", at),
    )


async def test_scratch_copy_never_touches_live_keys(container: Container, clerk: str) -> None:
    await assert_scratch_copy_leaves_live_keys(
        container.redis,
        ResumeProjection(scratch=True),
        saved(clerk, "1", recent()),
        resume_key(clerk, "1"),
    )


async def test_past_the_title_cap_the_oldest_titles_go_alike_in_any_batching(
    container: Container, settings: Settings, clerk: str
) -> None:
    capped = msgspec.structs.replace(settings, max_titles_per_user=3)
    at = recent()
    events: list[AnyEvent] = [saved(clerk, str(n), at + n * timedelta(seconds=1)) for n in range(6)]
    events.insert(3, deleted(clerk, "0", at + timedelta(seconds=10)))  # a tombstone counts too
    events.append(
        saved(clerk, "1", at - timedelta(seconds=5))
    )  # a late, older save of a dropped one
    dumps = []
    for size in (len(events), 1, 2):
        projection = ResumeProjection(scratch=True, settings=capped)
        projection.prefix = f"cap{size}{clerk}:"
        for start in range(0, len(events), size):
            await project(container.redis, projection, *events[start : start + size])
        dumps.append(await projection.dump(container.redis))
        kept = [k async for k in container.redis.scan_iter(match=f"{projection.prefix}resume:*")]
        assert len(kept) == 2  # the two newest live titles; nothing else is left behind
        await projection.clear(container.redis)
    assert dumps[0] == dumps[1] == dumps[2]
    newest = at + timedelta(seconds=5)
    assert dumps[0][index_key(clerk)] == {
        "0": -epoch_ms(at + timedelta(seconds=10)),
        "5": epoch_ms(newest),
        "4": epoch_ms(newest - timedelta(seconds=1)),
    }


async def test_a_change_notes_the_users_list_version_expiring_with_the_index(
    container: Container, live: ResumeProjection, clerk: str
) -> None:
    at = recent()
    batch = envelopes([saved(clerk, "1", at), saved(clerk, "2", at)])
    await apply_redis(container.redis, live, batch)
    key = version_key(clerk, 0)
    assert await container.redis.get(key) == batch[-1].stream_id.encode()
    expiry = epoch_ms(at + 30 * DAY)
    assert await container.redis.pexpiretime(key) == expiry
    assert await container.redis.pexpiretime(index_key(clerk)) == expiry
    # an older save of a title is skipped: the list did not change, nor does its version
    older = envelopes([saved(clerk, "1", at - timedelta(seconds=1))])
    await apply_redis(container.redis, live, older)
    assert await container.redis.get(key) == batch[-1].stream_id.encode()


async def test_a_kept_list_follows_every_change_and_lapses_with_its_oldest_entry(
    container: Container, feed: Feed, clerk: str
) -> None:
    """``list_progress`` through the process's list cache, with the clock moved by hand."""
    at = recent()
    await feed(saved(clerk, "old", at - 10 * DAY, 1))
    await feed(saved(clerk, "new", at, 2))
    assert [e.tmdb_id for e in await list_progress(container, clerk, 100)] == ["new", "old"]
    await feed(deleted(clerk, "new", at + timedelta(seconds=1)))
    assert [e.tmdb_id for e in await list_progress(container, clerk, 100)] == ["old"]
    await feed(saved(clerk, "new", at + timedelta(seconds=2), 3))
    listed = await list_progress(container, clerk, 100)
    assert [(e.tmdb_id, e.current_time) for e in listed] == [("new", 3), ("old", 1)]
    later = at - 10 * DAY + 30 * DAY  # "old" lapses; the list kept above must not answer it
    container.clock = FakeClock(later)
    assert [e.tmdb_id for e in await list_progress(container, clerk, 100)] == ["new"]
