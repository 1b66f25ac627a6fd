"""A parent's reads of a profile answered again while nothing they read changed
(``adapters.answer_cache``, ``projections.read_versions``).

The versions are read first, in one ``MGET`` on the profile's shard, then the kept answer is
checked or a new one made; an answer made after a version was read is never older than that
version, so a change landing in between only makes the next read miss.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from adapters.answer_cache import AnswerKey, Kept
from adapters.container import Container
from domain.localtime import local_date
from projections.read_versions import new_token, read_keys

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Made(Generic[T]):
    """A fresh answer, whose profile it is about, and the local date it depends on (if any)."""

    answer: T
    owner: int
    timezone: str
    today: date | None


async def kept_or_made(
    container: Container,
    key: AnswerKey,
    user_id: int,
    make: Callable[[], Awaitable[Made[T] | None]],
) -> T | None:
    """The answer kept under ``key`` if it still stands for ``user_id``, else ``make()``'s
    (``None``: not the caller's profile, never kept)."""
    profile_id = key[1]
    keys = read_keys(profile_id, container.events.shard_of(str(profile_id)))
    versions = tuple(await container.pipeline.execute("MGET", *keys))
    kept = container.answers.get(key, versions)
    if kept is not None and kept.owner == user_id and _same_day(container, kept):
        answer: T = kept.answer
        return answer
    made = await make()
    if made is None:
        return None
    if versions[1] is None:
        # No row token yet: write one, and keep the answer under it only if no change wrote
        # one first (a change after this overwrites it). Written only for an owner's read.
        token = new_token()
        if await container.pipeline.execute("SET", keys[1], token, "NX") is None:
            return made.answer
        versions = (versions[0], token.encode(), versions[2])
    container.answers.put(key, Kept(made.owner, versions, made.timezone, made.today, made.answer))
    return made.answer


def _same_day(container: Container, kept: Kept) -> bool:
    return kept.today is None or local_date(container.clock.now(), kept.timezone) == kept.today
