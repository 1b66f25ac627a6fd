"""Users: a token's ``sub`` mapped to its user row, created the first time it is seen.

The API authenticates callers by their token alone; rows that other tables point to (profiles,
videos) need a user id, which ``UserDirectory`` hands out and remembers per process.

A family erasure deletes the user row, so every API process must stop handing out its id, not
only the one that erased it. Two parts, because neither alone is enough:

- ``announce_erased`` publishes the erased ``sub`` on a Redis channel once the erasure has
  committed, and ``follow_erasures`` (a background task of every API process) forgets it on
  hearing it. Pub/sub delivers nothing to a subscriber that is not connected, so each time the
  subscription (re)connects the process forgets every id it knows: the map is only a cache and
  refills with one upsert per ``sub``, while an erasure missed during an outage could otherwise
  keep a deleted id for the life of the process (empty reads, refused writes). A channel is
  server-wide, not per Redis database: another deployment's notices only cost a lookup.
- The message still arrives a moment after the commit, so a write in that moment can carry the
  deleted id. ``write_as`` runs such writes: when one fails on a constraint and the caller's user
  row is gone, the id is forgotten, the ``sub`` resolved again (a fresh, empty user, as after an
  erasure on this process) and the write retried once. Checking that the row is gone, rather
  than parsing the database's error, works alike on every dialect and never retries a write
  refused for its own data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from adapters.container import Container
from adapters.tables import users

log = logging.getLogger("medio.auth")

T = TypeVar("T")
ERASED_CHANNEL = "medio:users:erased"  # Redis pub/sub: the ``sub`` of each erased family
# Redis pub/sub: the ids of each erasure's profiles (comma-separated), whose answers every API
# process drops (``adapters.answer_cache``)
PROFILES_ERASED_CHANNEL = "medio:profiles:erased"
FOLLOW_POLL_SECONDS = 5.0  # longest wait for a notice before the loop looks again
FOLLOW_RETRY_SECONDS = 1.0  # pause before subscribing again after a Redis outage


CLOSE_SECONDS = 2.0  # what shutdown waits for registrations under way


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

    def forget_all(self) -> None:
        """Erasures may have been missed: every ``sub`` is looked up again on its next request."""
        self._ids.clear()

    async def write_as(self, sub: str, user_id: int, write: Callable[[int], Awaitable[T]]) -> T:
        """``write(user_id)``, retried once with a fresh row if ``sub``'s row was erased meanwhile.

        ``user_id`` is the id the request was authenticated with; only a failure on a
        constraint while that row no longer exists is retried (see the module's docstring).
        """
        try:
            return await write(user_id)
        except IntegrityError:
            if await self._exists(user_id):
                raise
        if self._ids.get(sub) == user_id:  # unless a concurrent request resolved it anew
            self.forget(sub)
        log.info("user row erased by another process: the write is retried with a new one")
        return await write(await self.user_id(sub))

    async def _exists(self, user_id: int) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(sa.select(users.c.id).where(users.c.id == user_id))
        return found is not None

    async def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """At shutdown: let the registrations under way finish (up to ``seconds``), then cancel
        what is left, so none is cut off holding a database connection the process then drops.
        Subjects noted but not registered are registered by their next request."""
        tasks = (self._registrar, *self._pending.values())
        running = [task for task in tasks if task is not None and not task.done()]
        if not running:
            return
        _done, left = await asyncio.wait(running, timeout=seconds)
        for task in left:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

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


async def announce_erased(container: Container, sub: str) -> None:
    """Tell every API process that ``sub``'s user row is gone (after the erasure committed).

    A failure is logged, not raised: the erasure is done, and a process that misses the notice
    still answers correctly (``write_as``; it forgets every id when its subscription reconnects).
    """
    try:
        await container.redis.publish(ERASED_CHANNEL, sub)
    except (RedisError, OSError) as exc:
        log.warning("family erasure not announced to the other API processes: %s", exc)


async def announce_profiles_erased(container: Container, profile_ids: Collection[int]) -> None:
    """Tell every API process to drop what it keeps about these erased profiles (this one at
    once); a failure is logged, as for ``announce_erased`` (their read versions are deleted with
    them, so no kept answer is given again anyway)."""
    container.answers.forget_profiles(profile_ids)
    if not profile_ids:
        return
    try:
        await container.redis.publish(PROFILES_ERASED_CHANNEL, ",".join(map(str, profile_ids)))
    except (RedisError, OSError) as exc:
        log.warning("profile erasure not announced to the other API processes: %s", exc)


async def follow_erasures(container: Container, directory: UserDirectory) -> None:
    """Forget each erased ``sub`` and the answers kept about each erased profile, announced by
    any process, for as long as the process serves.

    Runs as a background task; a Redis outage is logged and the subscription retried every
    ``FOLLOW_RETRY_SECONDS``, without touching requests. Every (re)connection of the
    subscription forgets all known ids and kept answers, since notices sent while it was away
    are lost.
    """
    resubscribed = _Resubscribed(directory, container)
    me = asyncio.current_task()
    while True:
        try:
            async with container.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(ERASED_CHANNEL, PROFILES_ERASED_CHANNEL)
                resubscribed.connected(None)
                if pubsub.connection is not None:  # redis-py reconnects by itself, too
                    pubsub.connection.register_connect_callback(resubscribed.connected)
                while True:
                    _stop_if_cancelled(me)
                    message = await pubsub.get_message(timeout=FOLLOW_POLL_SECONDS)
                    if message is not None and message["type"] == "message":
                        _heard(container, directory, message["channel"], message["data"])
        except Exception as exc:  # Redis away, or anything else: the follower must live on
            _stop_if_cancelled(me)
            log.warning("not hearing family erasures (%s); retrying", exc)
            await asyncio.sleep(FOLLOW_RETRY_SECONDS)


def _stop_if_cancelled(task: asyncio.Task[Any] | None) -> None:
    """Stop a follower whose cancellation was swallowed: redis-py's read timeout can turn a
    cancel arriving with it into a timeout or a quiet ``None`` (measured: without this the app's
    shutdown waited on the follower forever)."""
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _heard(container: Container, directory: UserDirectory, channel: Any, data: Any) -> None:
    channel = channel.decode() if isinstance(channel, bytes) else channel
    text = data.decode() if isinstance(data, bytes) else str(data)
    if channel == PROFILES_ERASED_CHANNEL:
        container.answers.forget_profiles([int(p) for p in text.split(",") if p.isdigit()])
    else:
        directory.forget(text)


class _Resubscribed:
    """The subscription's connection callback (redis-py keeps it by weak reference)."""

    def __init__(self, directory: UserDirectory, container: Container) -> None:
        self.directory = directory
        self.container = container

    def connected(self, _connection: object) -> None:
        self.directory.forget_all()
        self.container.answers.clear()


def _is_outage(exc: Exception) -> bool:
    """The database is unreachable (as opposed to refusing this data)."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError) or bool(
        getattr(exc, "connection_invalidated", False)
    )
