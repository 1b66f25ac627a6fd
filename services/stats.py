"""Parents' stats for one profile, read from the stats projections (never from raw events).

The limit is today's effective one (the weekday entry or the default) and the remaining minutes
count today's bonus, read from the day's ledger (``projections.ledger``). An answer is kept by
the process and given again while the profile's read versions and local date stand
(``services.profile_reads``).
"""

from __future__ import annotations

from adapters.container import Container
from domain import policy as policy_rules
from domain import stats
from domain.sessions import local_date, remaining_minutes, whole_minutes
from projections.ledger import LedgerProjection
from projections.stats import StatsProjection
from services import catalog, ledger
from services.policy import policy_of
from services.profile_reads import Made, kept_or_made

# Favourites are ranked in SQL; a few spare rows cover videos deleted since they were watched.
SPARE_FAVORITES = 15


async def profile_stats(
    container: Container, user_id: int, profile_id: int
) -> stats.ProfileStats | None:
    """The caller's profile's stats at the clock's "now", or ``None`` if it is not theirs."""
    return await kept_or_made(
        container,
        ("stats", profile_id, ""),
        user_id,
        lambda: _made_stats(container, user_id, profile_id),
    )


async def _made_stats(
    container: Container, user_id: int, profile_id: int
) -> Made[stats.ProfileStats] | None:
    async with container.engine.connect() as conn:
        profile = await catalog.get_profile(conn, user_id, profile_id)
        if profile is None:
            return None
        today = local_date(container.clock.now(), profile.timezone)
        totals = await StatsProjection().totals(
            conn,
            profile.id,
            stats.last_seven_days(today),
            top=stats.FAVORITES + SPARE_FAVORITES,
        )
        titles = await catalog.get_video_titles(conn, [v for v, _n, _ms in totals.top_videos])
        bonus = ledger.bonus_of(await LedgerProjection().entries(conn, profile.id, today))
    today_ms = totals.daily_ms.get(today, 0)
    limit = policy_rules.day_limit_minutes(policy_of(profile, None), today)
    favorites = [
        stats.FavoriteVideo(video_id, titles[video_id], count, whole_minutes(ms))
        for video_id, count, ms in totals.top_videos
        if video_id in titles
    ]
    answer = stats.ProfileStats(
        profile_id=profile.id,
        total_watch_time_minutes=whole_minutes(totals.watched_ms),
        videos_watched=totals.videos_watched,
        average_session_minutes=stats.average_session_minutes(
            totals.watched_ms, totals.watched_sessions
        ),
        today_watch_time_minutes=whole_minutes(today_ms),
        daily_limit_minutes=limit,
        daily_limit_remaining_minutes=remaining_minutes(limit + bonus, today_ms),
        today_bonus_minutes=bonus,
        weekly_stats=stats.weekly_stats(today, totals.daily_ms),
        favorite_videos=favorites[: stats.FAVORITES],
    )
    return Made(answer, profile.user_id, profile.timezone, today)
