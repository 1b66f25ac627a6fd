"""Parents' reads of a profile (its stats, a day's ledger), kept by each API process while the
profile's read versions stand.

A stats read costs nine SQL round trips and several milliseconds of CPU; most parents look
again before anything of the child changed. An answer is kept with the values of the profile's
read versions (``projections.read_versions``: the projection's, the profile row's and the
generation's) read *before* it was made, and is answered again only while a fresh read of the
three (one ``MGET``) gives the same values, the caller owns the profile, and, for an answer
that depends on the local date, the profile's local date is still the one it was made on.
Erased profiles are dropped when their erasure is announced (``services.users``).
Bounded per process (``SIZE`` answers, least recently used out first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from datetime import date
from typing import Any

SIZE = 4096  # answers per process: a week's stats are about 1 KB

Versions = tuple[bytes | None, ...]
AnswerKey = tuple[str, int, str]  # (read, profile id, what of it: a date, "today", "")


@dataclass(frozen=True, slots=True)
class Kept:
    """An answer, whose profile it is about and what it was made under."""

    owner: int  # the profile's owner's user id
    versions: Versions
    timezone: str  # the profile's, for ``today``
    today: date | None  # the local date it was made on, when the answer depends on it
    answer: Any


class AnswerCache:
    """Answers by (read, profile id, detail)."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._kept: OrderedDict[AnswerKey, Kept] = OrderedDict()

    def get(self, key: AnswerKey, versions: Versions) -> Kept | None:
        """The answer kept under ``key`` if it was made under ``versions``."""
        kept = self._kept.get(key)
        if kept is None or kept.versions != versions:
            return None
        self._kept.move_to_end(key)
        return kept

    def put(self, key: AnswerKey, kept: Kept) -> None:
        if self.size <= 0:
            return
        self._kept[key] = kept
        self._kept.move_to_end(key)
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def forget_profiles(self, profile_ids: Collection[int]) -> None:
        """Drop every answer about these profiles (erased)."""
        gone = set(profile_ids)
        for key in [k for k in self._kept if k[1] in gone]:
            del self._kept[key]

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)


PAGES = 256  # feed pages per process: about 40 KB each (100 events)


class PageCache:
    """Full pages of the event feed by query, each under the archive's rewrite token it was
    read after (``projections.archive_pages.REWRITTEN_KEY``). Bounded (``PAGES``, least
    recently used out first)."""

    def __init__(self, size: int = PAGES) -> None:
        self.size = size
        self._pages: OrderedDict[Hashable, tuple[bytes, Any]] = OrderedDict()

    def get(self, query: Hashable, token: bytes) -> Any:
        """The page kept for ``query`` under ``token``, or ``None``."""
        kept = self._pages.get(query)
        if kept is None or kept[0] != token:
            return None
        self._pages.move_to_end(query)
        return kept[1]

    def put(self, query: Hashable, token: bytes, page: Any) -> None:
        if self.size <= 0:
            return
        self._pages[query] = (token, page)
        self._pages.move_to_end(query)
        if len(self._pages) > self.size:
            self._pages.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pages)
