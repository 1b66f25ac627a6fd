"""Series progress rules: a valid series save, its events, and the stored value (CONTRACT §4a).

A series save is a title save (``clerkId``, ``tmdbId`` = the episode, ``currentTime``,
``duration?``) plus ``seriesId``, so it is validated by the title rules of
``domain.progress`` and only ``seriesId`` is checked here: the same errors, messages and
``MalformedBody`` cases as ``POST /api/progress``, with one more field. Pure, like the title
rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from domain.events import SeriesProgressDeleted, SeriesProgressSaved
from domain.numbers import json_integer
from domain.progress import (
    NOT_UTF8_MESSAGE,
    SERIES_ID_MESSAGE,
    InvalidProgress,
    MalformedBody,
    epoch_ms,
    is_finished,
    parse_save,
    valid_series_id,
)


class SaveSeriesProgress(msgspec.Struct, frozen=True):
    """A validated ``POST /api/progress/series`` body; ids are in their string form."""

    clerk_id: str
    series_id: str
    tmdb_id: str
    current_time: float
    duration: float | None = None


class _SeriesId(msgspec.Struct, frozen=True, rename="camel"):
    series_id: str | int | float  # a float only as decoded: 1399.0 is the integer 1399


_series_id_decoder = msgspec.json.Decoder(_SeriesId)


def parse_series_save(raw: bytes) -> SaveSeriesProgress:
    """The series save in ``raw``; raises ``InvalidProgress`` naming every wrong field, or
    ``MalformedBody`` when ``raw`` is not a JSON object."""
    details: dict[str, str] = {}
    try:
        title = parse_save(raw)
    except InvalidProgress as exc:
        details.update(exc.details)
        title = None
    series_id = _series_id(raw)
    if series_id is None:
        details["seriesId"] = SERIES_ID_MESSAGE
    if details or title is None or series_id is None:
        raise InvalidProgress(details)
    return SaveSeriesProgress(
        clerk_id=title.clerk_id,
        series_id=series_id,
        tmdb_id=str(title.tmdb_id),
        current_time=title.current_time,
        duration=title.duration,
    )


def _series_id(raw: bytes) -> str | None:
    """``seriesId`` as a string, or ``None`` when it is missing or not a valid id.

    Runs after ``parse_save`` accepted ``raw`` as a JSON object (or found fields to blame in
    it), so a decode error here is about the one field the title decoder skipped.
    """
    try:
        found = _series_id_decoder.decode(raw).series_id
    except msgspec.ValidationError:
        return None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedBody(NOT_UTF8_MESSAGE) from None
    except RecursionError:
        raise MalformedBody("JSON body is nested too deeply") from None
    if isinstance(found, float):
        whole = json_integer(found)  # JSON Schema's integer, as for tmdbId
        if whole is None:
            return None
        found = whole
    if not valid_series_id(found):
        return None
    return str(found)


def check_series_id(series_id: str) -> str:
    """A ``seriesId`` taken from a path, or ``InvalidProgress``."""
    if not valid_series_id(series_id):
        raise InvalidProgress({"seriesId": SERIES_ID_MESSAGE})
    return series_id


def series_progress_saved(
    save: SaveSeriesProgress, actor: str, now: datetime
) -> SeriesProgressSaved:
    """The event recording ``save`` at ``now``; the finished rule is decided here, once."""
    return SeriesProgressSaved(
        occurred_at=now,
        actor=actor,
        clerk_id=save.clerk_id,
        series_id=save.series_id,
        tmdb_id=save.tmdb_id,
        current_time=save.current_time,
        duration=save.duration,
        finished=is_finished(save.current_time, save.duration),
    )


def series_progress_deleted(
    clerk_id: str, series_id: str, actor: str, now: datetime
) -> SeriesProgressDeleted:
    """The event removing a series' resume point."""
    return SeriesProgressDeleted(
        occurred_at=now, actor=actor, clerk_id=clerk_id, series_id=series_id
    )


def series_value(series_id: str, tmdb_id: str, current_time: float, updated_at: str) -> bytes:
    """The stored JSON, in the origin service's shape (whole seconds stay ints)."""
    number = int(current_time) if float(current_time).is_integer() else current_time
    return msgspec.json.encode(
        {"currentTime": number, "seriesId": series_id, "tmdbId": tmdb_id, "updatedAt": updated_at}
    )


Series = tuple[str, str]  # (clerkId, seriesId)
SeriesEvent = SeriesProgressSaved | SeriesProgressDeleted


@dataclass
class SeriesState:
    """A series as stored: its index score (``updatedAt`` ms, negative once finished or
    deleted, ``None`` if never seen) and its current episode (``None``: nothing to resume)."""

    score: float | None = None
    episode: str | None = None


@dataclass
class SeriesChanges:
    """What a batch of series events changes (see ``fold_series_events``)."""

    state: dict[Series, SeriesState] = field(default_factory=dict)
    written: dict[Series, tuple[SeriesEvent, int]] = field(default_factory=dict)
    removed: dict[Series, set[str]] = field(default_factory=dict)
    newest: dict[str, int] = field(default_factory=dict)


def fold_series_events(
    stored: Mapping[Series, SeriesState], events: Iterable[SeriesEvent]
) -> SeriesChanges:
    """Apply ``events`` in order to the ``stored`` state of their series.

    * Newest wins per series: an event older than the series' score is skipped, whatever
      order events arrive in; equal instants go to the later event.
    * One current episode: a save makes its episode the current one; a finished save or a
      delete leaves none (a tombstone: the negated instant).
    * ``written``: the last applied event and its instant, per series; ``removed``: every
      episode the series had or was saved with that is not its final current one (their
      keys must not exist); ``newest``: each user's newest applied instant.
    """
    changes = SeriesChanges({pair: SeriesState(s.score, s.episode) for pair, s in stored.items()})
    for event in events:
        pair = (event.clerk_id, event.series_id)
        now = changes.state.setdefault(pair, SeriesState())
        seen = changes.removed.setdefault(pair, set())
        if now.episode is not None:
            seen.add(now.episode)
        if isinstance(event, SeriesProgressSaved):
            seen.add(event.tmdb_id)
        at_ms = epoch_ms(event.occurred_at)
        if now.score is not None and at_ms < abs(now.score):
            continue  # a newer save or delete of this series is already applied
        if isinstance(event, SeriesProgressSaved) and not event.finished:
            now.score, now.episode = at_ms, event.tmdb_id
        else:
            now.score, now.episode = -at_ms, None
        changes.written[pair] = (event, at_ms)
        changes.newest[event.clerk_id] = max(changes.newest.get(event.clerk_id, at_ms), at_ms)
    for pair, seen in changes.removed.items():
        current = changes.state[pair].episode
        if current is not None:
            seen.discard(current)
    return changes
