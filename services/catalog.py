"""The catalog store: child profiles and videos in SQL, always scoped by their owner.

Every function takes the container (as every use case does), or an ``AsyncEngine`` or an open
``AsyncConnection`` (so a caller can run it inside its own transaction). Reads return
``domain.catalog`` records or ``None``; an id that belongs to someone else is indistinguishable
from an unknown id. The ``*_unscoped`` readers are
for the kids-mode public routes, which know a profile/video id but no owner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.container import Container
from adapters.tables import profiles, videos
from domain.catalog import Page, Profile, Video
from projections.read_versions import rows_changed
from services.idempotency import Receipt, write_once

T = TypeVar("T")
Db = Container | AsyncEngine | AsyncConnection
Sql = AsyncEngine | AsyncConnection


def _sql(db: Db) -> Sql:
    return db.engine if isinstance(db, Container) else db


MAX_ID = 2**63 - 1


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _profile(row: sa.Row[Any]) -> Profile:
    data = dict(row._mapping)
    data["created_at"] = _aware(data["created_at"])
    data["updated_at"] = _aware(data["updated_at"])
    return Profile(**data)


def _video(row: sa.Row[Any]) -> Video:
    data = dict(row._mapping)
    data["created_at"] = _aware(data["created_at"])
    data["updated_at"] = _aware(data["updated_at"])
    return Video(**data)


async def _first(source: Db, statement: sa.Executable) -> sa.Row[Any] | None:
    db = _sql(source)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            return (await conn.execute(statement)).first()
    return (await db.execute(statement)).first()


async def _all(source: Db, statement: sa.Executable) -> Sequence[sa.Row[Any]]:
    db = _sql(source)
    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            return (await conn.execute(statement)).all()
    return (await db.execute(statement)).all()


async def _write(source: Db, statement: sa.Executable) -> sa.Row[Any] | None:
    db = _sql(source)
    if isinstance(db, AsyncEngine):
        async with db.begin() as conn:
            return (await conn.execute(statement)).first()
    return (await db.execute(statement)).first()


async def _created(
    source: Db,
    statement: sa.Executable,
    record: Callable[[sa.Row[Any]], T],
    now: datetime,
    receipt: Receipt[T] | None,
) -> T:
    """The inserted row as a record, the receipt's answer stored with it when there is one."""

    async def insert(conn: AsyncConnection) -> T:
        row = (await conn.execute(statement)).first()
        assert row is not None
        return record(row)

    db = _sql(source)
    if receipt is not None:
        return await write_once(db, receipt, now, insert)
    if isinstance(db, AsyncEngine):
        async with db.begin() as conn:
            return await insert(conn)
    return await insert(db)


def _valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


# Profiles -----------------------------------------------------------------------------------


async def get_profile(db: Db, user_id: int, profile_id: int) -> Profile | None:
    """The caller's profile, or ``None`` (unknown or someone else's)."""
    if not _valid_id(profile_id):
        return None
    row = await _first(
        db,
        sa.select(profiles).where(profiles.c.id == profile_id, profiles.c.user_id == user_id),
    )
    return _profile(row) if row else None


async def get_profile_unscoped(db: Db, profile_id: int) -> Profile | None:
    """Any owner's profile by id: only for routes with no owner (kids-mode public start)."""
    if not _valid_id(profile_id):
        return None
    row = await _first(db, sa.select(profiles).where(profiles.c.id == profile_id))
    return _profile(row) if row else None


async def list_profiles(db: Db, user_id: int, page: Page) -> tuple[list[Profile], int]:
    """One page of the caller's profiles, oldest first, and how many there are in all."""
    total = await _first(
        db, sa.select(sa.func.count()).select_from(profiles).where(profiles.c.user_id == user_id)
    )
    rows = await _all(
        db,
        sa.select(profiles)
        .where(profiles.c.user_id == user_id)
        .order_by(profiles.c.id)
        .offset(page.offset)
        .limit(page.limit),
    )
    return [_profile(r) for r in rows], int(total[0]) if total else 0


async def create_profile(
    db: Db,
    user_id: int,
    values: dict[str, Any],
    now: datetime,
    receipt: Receipt[Profile] | None = None,
) -> Profile:
    """Insert a profile for ``user_id`` from validated ``values``.

    With a ``receipt`` its answer is recorded in the same transaction (``AlreadyAnswered`` if a
    twin request's was first).
    """
    statement = (
        profiles.insert()
        .values(user_id=user_id, created_at=now, updated_at=now, **values)
        .returning(*profiles.c)
    )
    return await _created(db, statement, _profile, now, receipt)


async def update_profile(
    db: Db, user_id: int, profile_id: int, values: dict[str, Any], now: datetime
) -> Profile | None:
    """Change the given fields of the caller's profile; ``None`` when it is not theirs."""
    if not _valid_id(profile_id):
        return None
    row = await _write(
        db,
        profiles.update()
        .where(profiles.c.id == profile_id, profiles.c.user_id == user_id)
        .values(updated_at=now, **values)
        .returning(*profiles.c),
    )
    if row is None:
        return None
    await _reads_changed(db, [profile_id])
    return _profile(row)


# Videos -------------------------------------------------------------------------------------


async def get_video(db: Db, user_id: int, video_id: int) -> Video | None:
    """The caller's video, or ``None`` (unknown or someone else's)."""
    if not _valid_id(video_id):
        return None
    row = await _first(
        db, sa.select(videos).where(videos.c.id == video_id, videos.c.user_id == user_id)
    )
    return _video(row) if row else None


async def get_video_unscoped(db: Db, video_id: int) -> Video | None:
    """Any owner's video by id: only for routes with no owner (kids-mode public start)."""
    if not _valid_id(video_id):
        return None
    row = await _first(db, sa.select(videos).where(videos.c.id == video_id))
    return _video(row) if row else None


async def get_video_titles(db: Db, video_ids: Sequence[int]) -> dict[int, str]:
    """Titles of the given videos by id, whoever owns them (for stats' favourite videos)."""
    wanted = sorted({v for v in video_ids if _valid_id(v)})
    if not wanted:
        return {}
    rows = await _all(db, sa.select(videos.c.id, videos.c.title).where(videos.c.id.in_(wanted)))
    return {int(r.id): str(r.title) for r in rows}


async def list_videos(
    db: Db, user_id: int, page: Page, max_min_age: int | None = None
) -> tuple[list[Video], int]:
    """One page of the caller's videos, newest first, and how many there are in all; with
    ``max_min_age``, only those a child of that age may watch."""
    mine = videos.c.user_id == user_id
    if max_min_age is not None:
        mine = mine & (videos.c.min_age <= max_min_age)
    total = await _first(db, sa.select(sa.func.count()).select_from(videos).where(mine))
    rows = await _all(
        db,
        sa.select(videos)
        .where(mine)
        .order_by(videos.c.created_at.desc(), videos.c.id.desc())
        .offset(page.offset)
        .limit(page.limit),
    )
    return [_video(r) for r in rows], int(total[0]) if total else 0


async def create_video(
    db: Db,
    user_id: int,
    values: dict[str, Any],
    now: datetime,
    receipt: Receipt[Video] | None = None,
) -> Video:
    """Insert a video for ``user_id`` from validated ``values`` (``receipt``: as for profiles)."""
    statement = (
        videos.insert()
        .values(user_id=user_id, created_at=now, updated_at=now, **values)
        .returning(*videos.c)
    )
    return await _created(db, statement, _video, now, receipt)


async def update_video(
    db: Db, user_id: int, video_id: int, values: dict[str, Any], now: datetime
) -> Video | None:
    """Change the given fields of the caller's video; ``None`` when it is not theirs."""
    if not _valid_id(video_id):
        return None
    row = await _write(
        db,
        videos.update()
        .where(videos.c.id == video_id, videos.c.user_id == user_id)
        .values(updated_at=now, **values)
        .returning(*videos.c),
    )
    if row is None:
        return None
    await _family_reads_changed(db, user_id)
    return _video(row)


async def delete_video(db: Db, user_id: int, video_id: int) -> Video | None:
    """Remove the caller's video and return what it was (its files are the caller's to remove)."""
    if not _valid_id(video_id):
        return None
    row = await _write(
        db,
        videos.delete()
        .where(videos.c.id == video_id, videos.c.user_id == user_id)
        .returning(*videos.c),
    )
    if row is None:
        return None
    await _family_reads_changed(db, user_id)
    return _video(row)


# What parents read of a profile (stats, a day's ledger) shows its row and its family's video
# titles: answers kept by API processes (``services.profile_reads``) lapse once they change.
# Through a container only: a caller writing in its own transaction bumps after its commit.


async def _reads_changed(db: Db, profile_ids: Sequence[int]) -> None:
    if isinstance(db, Container) and profile_ids:
        await rows_changed(db.pipeline, profile_ids, db.events.shard_of)


async def _family_reads_changed(db: Db, user_id: int) -> None:
    """A video's title shows in the stats and ledgers of its owner's profiles (sessions are
    only ever started on the owner's own videos)."""
    if isinstance(db, Container):
        rows = await _all(db, sa.select(profiles.c.id).where(profiles.c.user_id == user_id))
        await _reads_changed(db, [int(r.id) for r in rows])
