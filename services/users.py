"""Users: a token's ``sub`` mapped to its user row, created the first time it is seen.

The API authenticates callers by their token alone; rows that other tables point to (profiles,
videos) need a user id, which ``UserDirectory`` hands out per process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import InterfaceError, OperationalError

from adapters.container import Container
from adapters.tables import users

log = logging.getLogger("medio.auth")


class UserDirectory:
    """Maps a token's ``sub`` to its user row, creating the row the first time.

    Ids are remembered per process (the ``KNOWN_USERS`` most recently used: a process that
    has seen millions of users keeps a bounded map); concurrent first requests of one ``sub``
    share one upsert. ``note`` makes sure the row exists without waiting, for routes that need
    only the ``sub`` (ingest): new subjects are collected and registered together, one
    multi-row upsert per round, so a burst of new users costs the database a few statements, not one
    transaction each.
    """

    RETRY_SECONDS = 1.0
    BATCH = 1000
    KNOWN_USERS = 100_000  # ids kept per process, the most recently used (about 15 MB)

    def __init__(self, container: Container) -> None:
        self.engine = container.engine
        self._ids: OrderedDict[str, int] = OrderedDict()  # an LRU: see _known, _learn
        self._pending: dict[str, asyncio.Task[dict[str, int]]] = {}
        self._noted: set[str] = set()
        self._registrar: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    def _known(self, sub: str) -> int | None:
        known = self._ids.get(sub)
        if known is not None:
            self._ids.move_to_end(sub)
        return known

    def _learn(self, ids: dict[str, int]) -> None:
        self._ids.update(ids)
        while len(self._ids) > self.KNOWN_USERS:
            self._ids.popitem(last=False)

    async def user_id(self, sub: str) -> int:
        known = self._known(sub)
        if known is not None:
            return known
        task = self._pending.get(sub)
        if task is None:
            task = asyncio.ensure_future(self._upsert([sub]))
            self._pending[sub] = task
            task.add_done_callback(lambda _: self._pending.pop(sub, None))
        return (await asyncio.shield(task))[sub]

    def forget(self, sub: str) -> None:
        """``sub``'s row was erased: its next request makes a new one."""
        self._ids.pop(sub, None)

    def note(self, sub: str) -> None:
        """Register ``sub`` in the background if this process has not seen it."""
        if self._known(sub) is not None:
            return
        self._noted.add(sub)
        idle = self._registrar is None or self._registrar.done()
        if idle and time.monotonic() >= self._retry_at:
            self._registrar = asyncio.ensure_future(self._register_noted())

    async def _register_noted(self) -> None:
        while self._noted:
            batch = [self._noted.pop() for _ in range(min(self.BATCH, len(self._noted)))]
            try:
                await self._upsert(batch)
            except Exception as exc:
                if _is_outage(exc):
                    self._later(batch, exc)  # the database is down: keep them for later
                    return
                if not await self._register_one_by_one(batch):
                    return

    async def _register_one_by_one(self, batch: list[str]) -> bool:
        """After a batch failed for its data: each subject alone, so one row the database
        refuses cannot keep every other user of its batch from being created. A subject
        refused alone is dropped (its next request notes it again). ``False``: the database
        went away meanwhile (the rest is kept for a later round)."""
        for index, sub in enumerate(batch):
            try:
                await self._upsert([sub])
            except Exception as exc:
                if _is_outage(exc):
                    self._later(batch[index:], exc)
                    return False
                log.warning("user row not created for a subject the database refuses: %s", exc)
        return True

    def _later(self, subs: list[str], exc: Exception) -> None:
        self._noted.update(subs)
        self._retry_at = time.monotonic() + self.RETRY_SECONDS
        log.warning("user rows for %d new subjects not created yet: %s", len(subs), exc)

    async def _upsert(self, subs: list[str]) -> dict[str, int]:
        insert = (sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert)(users)
        now = datetime.now(UTC)
        statement = (
            insert.values([{"external_id": sub, "created_at": now} for sub in subs])
            .on_conflict_do_update(
                index_elements=[users.c.external_id],
                set_={"external_id": insert.excluded.external_id},
            )
            .returning(users.c.external_id, users.c.id)
        )
        async with self.engine.begin() as conn:
            ids = {sub: int(user_id) for sub, user_id in await conn.execute(statement)}
        self._learn(ids)
        return ids


def _is_outage(exc: Exception) -> bool:
    """The database is unreachable (as opposed to refusing this data)."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError) or bool(
        getattr(exc, "connection_invalidated", False)
    )
