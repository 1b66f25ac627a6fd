"""``GET /api/me/export``: everything Medio holds about a family, as one streamed JSON document
(CONTRACT §15, GDPR Art. 20).

The document is an object with one member per section, written as it is read:

``user``, ``profiles``, ``videos`` (metadata, not the files), ``sessions``, ``stats_daily``,
``stats_videos``, ``stats_totals`` (rows as stored), ``devices`` (without token hashes),
``progress`` and ``series_progress`` (the resume lists, unexpired entries), ``day_ledger`` (what
changed each child's budget, per local day) and ``time_requests`` (the children's requests for
more time of the last 30 days, without the hash of the token that asked), and ``events``:
the family's events from the archive (its own and its children's), opened, in archive order,
as the feed shows them.

Memory does not grow with the history: every section that can grow (sessions, events) is read
in keyset pages of ``PAGE`` rows and each page is encoded and handed to the response before the
next is read. A family's events are found by the ids of its privacy keys, scanning the archive
by position once. Another feature adds its rows by adding a section to ``SECTIONS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa

from adapters.container import Container
from adapters.tables import (
    day_ledger,
    devices,
    events,
    privacy_keys,
    profiles,
    stats_daily,
    stats_totals,
    stats_videos,
    users,
    videos,
    watch_sessions,
)
from domain.history import ArchiveFilter
from domain.privacy import family_subject, profile_subject
from domain.timestamps import iso_ms
from projections.archive_pages import iter_archive
from projections.resume import listed_positions
from projections.series_resume import listed_series
from services.history import feed_event
from services.policy import profile_time_requests

PAGE = 1000
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class Family:
    """Whose data is exported: the token's ``sub`` and its user row."""

    clerk_id: str
    user_id: int


Rows = AsyncIterator[list[Any]]
Section = tuple[str, Callable[[Container, Family], Rows]]


async def _rows(container: Container, query: sa.Select[Any]) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


def _owned(table: sa.Table) -> Callable[[Container, Family], Rows]:
    async def rows(container: Container, family: Family) -> Rows:
        yield await _rows(container, sa.select(table).where(table.c.user_id == family.user_id))

    return rows


async def _profile_ids(container: Container, family: Family) -> list[int]:
    async with container.engine.connect() as conn:
        found = await conn.execute(
            sa.select(profiles.c.id).where(profiles.c.user_id == family.user_id)
        )
        return [int(p) for (p,) in found]


async def _user(container: Container, family: Family) -> Rows:
    yield await _rows(container, sa.select(users).where(users.c.id == family.user_id))


async def _sessions(container: Container, family: Family) -> Rows:
    after = 0
    while True:
        page = await _rows(
            container,
            sa.select(watch_sessions)
            .where(watch_sessions.c.user_id == family.user_id)
            .where(watch_sessions.c.session_id > after)
            .order_by(watch_sessions.c.session_id)
            .limit(PAGE),
        )
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1]["session_id"]


def _stats(table: sa.Table) -> Callable[[Container, Family], Rows]:
    async def rows(container: Container, family: Family) -> Rows:
        mine = await _profile_ids(container, family)
        yield await _rows(container, sa.select(table).where(table.c.profile_id.in_(mine)))

    return rows


async def _devices(container: Container, family: Family) -> Rows:
    """The family's paired devices, without the token hash (no secrets)."""
    shown = [c for c in devices.c if c.name != "token_hash"]
    yield await _rows(container, sa.select(*shown).where(devices.c.user_id == family.user_id))


async def _progress(container: Container, family: Family) -> Rows:
    most, now = container.settings.max_titles_per_user, container.clock.now()
    yield list((await listed_positions(container.pipeline, family.clerk_id, most, now)).entries)


async def _series(container: Container, family: Family) -> Rows:
    most, now = container.settings.max_titles_per_user, container.clock.now()
    yield list((await listed_series(container.pipeline, family.clerk_id, most, now)).entries)


async def _time_requests(container: Container, family: Family) -> Rows:
    for profile_id in await _profile_ids(container, family):
        found = await profile_time_requests(container, profile_id)
        yield [_without_asker(msgspec.to_builtins(r)) for r in found]


def _without_asker(request: dict[str, Any]) -> dict[str, Any]:
    request.pop("asker")  # a token's hash: a secret, not the family's data
    return request


async def _events(container: Container, family: Family) -> Rows:
    subjects = [family_subject(family.clerk_id)]
    subjects += [profile_subject(p) for p in await _profile_ids(container, family)]
    async with container.engine.connect() as conn:
        found = await conn.execute(
            sa.select(privacy_keys.c.id).where(privacy_keys.c.subject.in_(subjects))
        )
        key_ids = tuple(sorted(int(k) for (k,) in found))
        last = await conn.scalar(sa.select(sa.func.max(events.c.position))) or 0
    if key_ids:
        wanted = ArchiveFilter(key_ids=key_ids)
        async for page in iter_archive(container.engine, container.keyring, wanted, last, PAGE):
            yield [feed_event(e) for e in page if not e.erased]


SECTIONS: list[Section] = [
    ("user", _user),
    ("profiles", _owned(profiles)),
    ("videos", _owned(videos)),
    ("sessions", _sessions),
    ("stats_daily", _stats(stats_daily)),
    ("stats_videos", _stats(stats_videos)),
    ("stats_totals", _stats(stats_totals)),
    ("devices", _devices),
    ("progress", _progress),
    ("series_progress", _series),
    ("day_ledger", _stats(day_ledger)),
    ("time_requests", _time_requests),
    ("events", _events),
]


async def export_family(container: Container, family: Family) -> AsyncIterator[bytes]:
    """The export document, a chunk at a time (a section's page per chunk)."""
    yield b'{"exported_at":' + _encoder.encode(iso_ms(container.clock.now()))
    for name, section in SECTIONS:
        yield b',"' + name.encode() + b'":['
        first = True
        async for page in section(container, family):
            if not page:
                continue
            body = b",".join(_encoder.encode(row) for row in page)
            yield body if first else b"," + body
            first = False
        yield b"]"
    yield b"}"
