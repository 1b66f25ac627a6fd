"""What an analyst may ask of the event history, and how their question is read.

Pure parsing shared by the HTTP feed and the export command, so ``?since=`` and ``--since``
accept the same instants and reject the same mistakes with the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.events import EVENT_TYPES

DEFAULT_FEED_LIMIT = 100
MAX_FEED_LIMIT = 1000
MAX_PROFILE_ID = 2**63 - 1

MSG_AFTER = "after must be a non-negative integer position"
MSG_LIMIT = f"limit must be an integer between 1 and {MAX_FEED_LIMIT}"
MSG_TYPE = "Unknown event type; one of: " + ", ".join(sorted(EVENT_TYPES))
MSG_INSTANT = "Must be an ISO-8601 date or date-time, e.g. 2025-07-30T09:23:45.678Z"
MSG_RANGE = "until must be later than since"
MSG_PROFILE = "profile_id must be a positive integer"


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """Which events an analyst asked for; empty fields mean "all"."""

    types: tuple[str, ...] = ()
    since: datetime | None = None  # inclusive, on occurred_at
    until: datetime | None = None  # exclusive, on occurred_at
    profile_id: int | None = None  # events whose body carries this profile_id (sessions)
    key_ids: tuple[int, ...] = ()  # only events sealed with these privacy keys (one family's)


@dataclass(frozen=True, slots=True)
class FeedQuery:
    """One page request of ``GET /api/events``."""

    after: int
    limit: int
    wanted: ArchiveFilter


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid parameter and the message the client sees."""

    path: str
    msg: str


def parse_instant(text: str) -> datetime | None:
    """An aware UTC instant from ISO-8601 (``Z``, an offset, or none = UTC); ``None`` if bad.

    A bare date means its midnight UTC, so ``--since 2025-07-01 --until 2025-08-01`` is July.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_filter(
    types: Sequence[str], since: str | None, until: str | None, profile_id: str | None
) -> tuple[ArchiveFilter | None, list[Problem]]:
    """The filter named by raw parameters, or the problems with them (nothing clamped)."""
    problems: list[Problem] = []
    names = tuple(dict.fromkeys(name for raw in types for name in raw.split(",") if name))
    if any(name not in EVENT_TYPES for name in names):
        problems.append(Problem("type", MSG_TYPE))
    start = _instant("since", since, problems)
    end = _instant("until", until, problems)
    if start is not None and end is not None and end <= start:
        problems.append(Problem("until", MSG_RANGE))
    profile = _integer(profile_id, default=None, low=1, high=MAX_PROFILE_ID)
    if profile_id is not None and profile is None:
        problems.append(Problem("profile_id", MSG_PROFILE))
    if problems:
        return None, problems
    return ArchiveFilter(types=names, since=start, until=end, profile_id=profile), []


def parse_feed_query(
    after: str | None,
    limit: str | None,
    types: Sequence[str],
    since: str | None,
    until: str | None,
) -> tuple[FeedQuery | None, list[Problem]]:
    """``?after=&limit=&type=&since=&until=`` as given, or what is wrong with it.

    No profile filter here, unlike the export: it cannot use an index, and one feed request
    must not scan the whole archive for a child who has few events.
    """
    problems: list[Problem] = []
    position = _integer(after, default=0, low=0, high=2**63 - 1)
    if position is None:
        problems.append(Problem("after", MSG_AFTER))
    size = _integer(limit, default=DEFAULT_FEED_LIMIT, low=1, high=MAX_FEED_LIMIT)
    if size is None:
        problems.append(Problem("limit", MSG_LIMIT))
    wanted, filter_problems = parse_filter(types, since, until, None)
    problems.extend(filter_problems)
    if problems or position is None or size is None or wanted is None:
        return None, problems
    return FeedQuery(after=position, limit=size, wanted=wanted), []


def _instant(name: str, text: str | None, problems: list[Problem]) -> datetime | None:
    if text is None:
        return None
    moment = parse_instant(text)
    if moment is None:
        problems.append(Problem(name, MSG_INSTANT))
    return moment


def _integer(text: str | None, default: int | None, low: int, high: int) -> int | None:
    if text is None:
        return default
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit():
        return None
    value = int(stripped)
    return value if low <= value <= high else None
