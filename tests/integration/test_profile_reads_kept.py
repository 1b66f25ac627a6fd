"""Stats, day ledgers and feed pages kept per API process (``adapters.answer_cache``) are given
again only while nothing they show has changed, whichever process changed it.

Two containers stand for two API processes sharing Redis and the database. After every change
the kept answer of process ``b`` must equal a fresh answer (process ``a`` with nothing kept).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from session_samples import new_owner, new_profile, new_video

from adapters.answer_cache import AnswerCache, Kept
from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import events
from domain.clock import FakeClock
from domain.events import BonusGranted, DayShare, SessionHeartbeat, SessionStarted
from domain.history import ArchiveFilter, FeedQuery
from projections.read_versions import models_replaced
from projections.recovery import ensure_current
from projections.redis_generation import CHECKED_KEY
from projections.runtime import project_pending
from services import catalog, ledger, privacy
from services.container import build_container
from services.history import feed_page
from services.stats import profile_stats
from services.users import UserDirectory, follow_erasures

NOON_TOKYO = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)


@pytest.fixture
async def processes(settings: Settings) -> AsyncIterator[tuple[Container, Container]]:
    clock = FakeClock(NOON_TOKYO)
    a, b = build_container(settings, clock=clock), build_container(settings, clock=clock)
    yield a, b
    await a.close()
    await b.close()


async def _fresh_stats(a: Container, user_id: int, profile_id: int) -> Any:
    a.answers.clear()
    return await profile_stats(a, user_id, profile_id)


async def _watch(a: Container, profile_id: int, video_id: int, session_id: int, sec: float) -> None:
    now = a.clock.now()
    day = "2026-03-04"
    common: dict[str, Any] = {"actor": "t", "profile_id": profile_id, "occurred_at": now}
    await a.events.append(
        str(profile_id),
        SessionStarted(
            session_id=session_id, video_id=video_id, user_id=1, timezone="Asia/Tokyo",
            local_date=day, **common,
        ),
    )  # fmt: skip
    await a.events.append(
        str(profile_id),
        SessionHeartbeat(
            session_id=session_id, video_id=video_id, shares=(DayShare(day, sec),),
            watched_seconds=sec, **common,
        ),
    )  # fmt: skip
    await project_pending(a)


async def _family(a: Container) -> tuple[int, int, int]:
    owner = await new_owner(a)
    profile = await new_profile(a, owner)
    video = await new_video(a, owner, "Alpha")
    return owner, profile.id, video.id


async def test_stats_are_kept_until_a_projected_event_changes_them(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_001, 600)
    first = await profile_stats(b, owner, profile_id)
    second = await profile_stats(b, owner, profile_id)
    third = await profile_stats(b, owner, profile_id)
    assert second is first and third is first  # kept from the first read on (its row token)
    assert third == await _fresh_stats(a, owner, profile_id)
    await _watch(a, profile_id, video_id, 9_100_002, 300)
    changed = await profile_stats(b, owner, profile_id)
    assert changed is not None and changed.total_watch_time_minutes == 15
    assert changed == await _fresh_stats(a, owner, profile_id)


async def test_a_change_by_another_process_is_seen_at_once(
    processes: tuple[Container, Container],
) -> None:
    """The profile's row and its family's video titles are no projection's: the process that
    changes them writes the profile's row token before it answers."""
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_011, 600)
    for _ in range(2):
        await profile_stats(b, owner, profile_id)
    now = a.clock.now()
    await catalog.update_profile(a, owner, profile_id, {"daily_limit_minutes": 25}, now)
    limited = await profile_stats(b, owner, profile_id)
    assert limited is not None and limited.daily_limit_minutes == 25
    await profile_stats(b, owner, profile_id)
    await catalog.update_video(a, owner, video_id, {"title": "Alpha II"}, now)
    renamed = await profile_stats(b, owner, profile_id)
    assert renamed is not None and renamed.favorite_videos[0].title == "Alpha II"
    await catalog.delete_video(a, owner, video_id)
    gone = await profile_stats(b, owner, profile_id)
    assert gone is not None and gone.favorite_videos == []
    assert gone == await _fresh_stats(a, owner, profile_id)


async def test_kept_answers_follow_the_local_date_and_the_owner(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_021, 600)
    for _ in range(2):
        today = await profile_stats(b, owner, profile_id)
        day = await ledger.owned_day_ledger(b, owner, profile_id, "today")
    assert today is not None and today.today_watch_time_minutes == 10
    assert day is not None and day["date"] == "2026-03-04"
    assert await profile_stats(b, await new_owner(a), profile_id) is None  # not theirs
    assert isinstance(a.clock, FakeClock)
    a.clock.set(NOON_TOKYO + timedelta(hours=12))  # past midnight in Tokyo
    tomorrow = await profile_stats(b, owner, profile_id)
    assert tomorrow is not None and tomorrow.today_watch_time_minutes == 0
    assert tomorrow == await _fresh_stats(a, owner, profile_id)
    next_day = await ledger.owned_day_ledger(b, owner, profile_id, "today")
    assert next_day is not None and next_day["date"] == "2026-03-05"


async def test_a_day_ledger_is_kept_until_its_day_changes(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, _video_id = await _family(a)
    for _ in range(3):
        before = await ledger.owned_day_ledger(b, owner, profile_id, "2026-03-04")
    assert before is not None and before["bonus_minutes"] == 0
    bonus = BonusGranted(
        occurred_at=a.clock.now(), actor="t", profile_id=profile_id, local_date="2026-03-04",
        minutes=15, total_minutes=15,
    )  # fmt: skip
    await a.events.append(str(profile_id), bonus)
    await project_pending(a)
    after = await ledger.owned_day_ledger(b, owner, profile_id, "2026-03-04")
    assert after is not None and after["bonus_minutes"] == 15
    a.answers.clear()
    assert after == await ledger.owned_day_ledger(a, owner, profile_id, "2026-03-04")


async def test_a_rebuild_or_retention_lapses_every_kept_answer(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_031, 60)
    for _ in range(3):
        kept = await profile_stats(b, owner, profile_id)
    assert await profile_stats(b, owner, profile_id) is kept
    await models_replaced(a.redis, a.settings.stream_shards)
    assert await profile_stats(b, owner, profile_id) is not kept


async def test_a_redis_server_run_checked_anew_lapses_every_kept_answer(
    processes: tuple[Container, Container],
) -> None:
    """A Redis that restarted may have lost its newest versions: once the command side is
    checked against the archive on the new server run, nothing kept before is given."""
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_061, 60)
    for _ in range(3):
        kept = await profile_stats(b, owner, profile_id)
    assert await profile_stats(b, owner, profile_id) is kept
    await a.redis.delete(CHECKED_KEY)  # as after a restart: this server run is not checked
    await ensure_current(a)
    assert await profile_stats(b, owner, profile_id) is not kept


async def test_an_erased_child_leaves_nothing_kept_in_any_process(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await _watch(a, profile_id, video_id, 9_100_041, 60)
    follower = asyncio.create_task(follow_erasures(b, UserDirectory(b)))
    try:
        await asyncio.sleep(0.2)  # subscribed (a (re)subscription drops everything kept)
        for _ in range(2):
            assert await profile_stats(b, owner, profile_id) is not None
            await ledger.owned_day_ledger(b, owner, profile_id, "today")
        assert len(b.answers) == 2
        assert await privacy.erase_profile(a, owner, profile_id)
        for _ in range(100):
            if not len(b.answers):
                break
            await asyncio.sleep(0.02)
        assert len(b.answers) == 0
        assert await profile_stats(b, owner, profile_id) is None
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_full_feed_pages_are_kept_until_archived_rows_are_rewritten(
    processes: tuple[Container, Container],
) -> None:
    a, b = processes
    owner, profile_id, video_id = await _family(a)
    await project_pending(a)
    async with a.engine.connect() as conn:
        start = int(await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0)
    await _watch(a, profile_id, video_id, 9_100_051, 60)
    await _watch(a, profile_id, video_id, 9_100_052, 60)  # four events archived after start
    full = FeedQuery(after=start, limit=3, wanted=ArchiveFilter())
    tail = FeedQuery(after=start, limit=10, wanted=ArchiveFilter())
    pages = [await feed_page(b, full) for _ in range(3)]
    assert len(pages[2]) == 3 and pages[2] is pages[1]  # kept once a token was read
    tails = [await feed_page(b, tail) for _ in range(3)]
    assert len(tails[2]) == 4 and tails[2] is not tails[1]  # a page not full is never kept
    assert await privacy.erase_profile(a, owner, profile_id)
    after = await feed_page(b, full)
    assert after is not pages[2]
    a.pages = type(a.pages)()
    assert after == await feed_page(a, full)


def test_the_cache_is_bounded() -> None:
    cache = AnswerCache(size=3)
    for profile_id in range(10):
        cache.put(("stats", profile_id, ""), Kept(1, (b"1",), "UTC", None, profile_id))
    assert len(cache) == 3
    assert cache.get(("stats", 9, ""), (b"1",)) is not None
    assert cache.get(("stats", 9, ""), (b"2",)) is None  # another version: not given
    assert cache.get(("stats", 0, ""), (b"1",)) is None  # the oldest went first
