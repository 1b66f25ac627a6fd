"""Resume progress rules: what a valid save is, when a title counts as watched, which event.

Pure functions over bytes and plain values (CONTRACT §4). The API maps ``InvalidProgress`` to
the progress family's validation body and ``MalformedBody`` to its plain error body.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec

from domain.events import ProgressDeleted, ProgressSaved
from domain.numbers import json_integer

RESUME_TTL = timedelta(days=30)
RESUME_TTL_MS = int(RESUME_TTL.total_seconds() * 1000)
MAX_SECONDS = 604_800  # one week: no playback position or title is longer
MAX_TMDB_ID_LENGTH = 64
FINISHED_FRACTION = 0.9
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 500


class MalformedBody(ValueError):
    """The body is not a JSON object at all; there are no fields to blame."""


class InvalidProgress(ValueError):
    """Named fields are missing or invalid; ``details`` maps each to a client message."""

    def __init__(self, details: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in details.items()))
        self.details = dict(details)


class SaveProgress(msgspec.Struct, frozen=True, rename="camel"):
    """A validated ``POST /api/progress`` body."""

    clerk_id: str
    tmdb_id: str | int | float  # a float only as decoded: 550.0 is the integer 550
    current_time: float
    duration: float | None = None


_save_decoder = msgspec.json.Decoder(SaveProgress)
_any_decoder = msgspec.json.Decoder()

KEY_SEPARATOR = ":"  # of the resume keys' segments (CONTRACT §4); see valid_key_segment
CLERK_ID_MESSAGE = "clerkId is required and must be a non-empty string without ':'"
SERIES_ID_MESSAGE = (
    f"seriesId is required: a string of 1-{MAX_TMDB_ID_LENGTH} characters (no '/' or ':') "
    "or a non-negative integer"
)
TMDB_ID_MESSAGE = (
    f"tmdbId is required: a string of 1-{MAX_TMDB_ID_LENGTH} characters (no '/') "
    "or a non-negative integer"
)
CURRENT_TIME_MESSAGE = f"currentTime is required: a number of seconds from 0 to {MAX_SECONDS}"
DURATION_MESSAGE = f"duration must be a number of seconds greater than 0 and at most {MAX_SECONDS}"
NOT_UTF8_MESSAGE = "Request body must be UTF-8 encoded JSON"
LIMIT_MESSAGE = f"limit must be an integer from 1 to {MAX_LIST_LIMIT}"
FIELD_MESSAGES = {
    "clerkId": CLERK_ID_MESSAGE,
    "tmdbId": TMDB_ID_MESSAGE,
    "currentTime": CURRENT_TIME_MESSAGE,
    "duration": DURATION_MESSAGE,
}
_FIELD_IN_ERROR = re.compile(r"at `\$\.(\w+)`")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def parse_save(raw: bytes) -> SaveProgress:
    """The save in ``raw``, with ``tmdbId`` as its string form; raises on anything invalid."""
    try:
        body = _save_decoder.decode(raw)
    except RecursionError:
        raise MalformedBody("JSON body is nested too deeply") from None
    except UnicodeDecodeError:
        raise MalformedBody(NOT_UTF8_MESSAGE) from None
    except msgspec.ValidationError as exc:
        raise InvalidProgress(_field_errors(raw, exc)) from None
    except msgspec.DecodeError:
        raise _malformed(raw) from None
    if isinstance(body.tmdb_id, float):
        whole = json_integer(body.tmdb_id)
        body = msgspec.structs.replace(body, tmdb_id=-1 if whole is None else whole)
    details = _range_errors(body)
    if details:
        raise InvalidProgress(details)
    if isinstance(body.tmdb_id, int):
        return msgspec.structs.replace(body, tmdb_id=str(body.tmdb_id))
    return body


def _field_errors(raw: bytes, error: msgspec.ValidationError) -> dict[str, str]:
    """Every wrong field of a body the typed decoder refused (slow path, errors only)."""
    try:
        body = _any_decoder.decode(raw)
    except msgspec.DecodeError:  # e.g. a number beyond a double: only the typed error names it
        if not _is_utf8(raw):  # in a field the typed decoder skipped (msgspec >= 0.23)
            raise MalformedBody(NOT_UTF8_MESSAGE) from None
        return _blamed_field(error)
    except RecursionError:
        raise MalformedBody("JSON body is nested too deeply") from None
    except UnicodeDecodeError:  # in a field the typed decoder skipped
        raise MalformedBody(NOT_UTF8_MESSAGE) from None
    if not isinstance(body, dict):
        raise MalformedBody("Request body must be a JSON object")
    details: dict[str, str] = {}
    clerk_id = body.get("clerkId")
    if not isinstance(clerk_id, str) or not valid_clerk_id(clerk_id):
        details["clerkId"] = CLERK_ID_MESSAGE
    if json_integer(body.get("tmdbId")) is None and not isinstance(body.get("tmdbId"), str):
        details["tmdbId"] = TMDB_ID_MESSAGE
    if not _is_number(body.get("currentTime")):
        details["currentTime"] = CURRENT_TIME_MESSAGE
    duration = body.get("duration")
    if duration is not None and not _is_number(duration):
        details["duration"] = DURATION_MESSAGE
    return details or _blamed_field(error)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _malformed(raw: bytes) -> MalformedBody:
    """Malformed JSON, or (msgspec >= 0.23 says only "invalid UTF-8") text that is not UTF-8."""
    return MalformedBody(NOT_UTF8_MESSAGE if not _is_utf8(raw) else "Malformed JSON body")


def _blamed_field(error: msgspec.ValidationError) -> dict[str, str]:
    found = _FIELD_IN_ERROR.search(str(error))
    field = found.group(1) if found else ""
    return {field: FIELD_MESSAGES[field]} if field in FIELD_MESSAGES else {"body": str(error)}


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, float) or _is_integer(value)


def _range_errors(body: SaveProgress) -> dict[str, str]:
    details: dict[str, str] = {}
    if not valid_clerk_id(body.clerk_id):
        details["clerkId"] = CLERK_ID_MESSAGE
    if isinstance(body.tmdb_id, float) or not valid_tmdb_id(body.tmdb_id):
        details["tmdbId"] = TMDB_ID_MESSAGE
    if not (math.isfinite(body.current_time) and 0 <= body.current_time <= MAX_SECONDS):
        details["currentTime"] = CURRENT_TIME_MESSAGE
    duration = body.duration
    if duration is not None and not (math.isfinite(duration) and 0 < duration <= MAX_SECONDS):
        details["duration"] = DURATION_MESSAGE
    return details


def valid_key_segment(value: str) -> bool:
    """Whether ``value`` may stand before another segment of a resume key: no ``:``.

    The key layout is fixed by CONTRACT §4 (``resume:{clerkId}:{tmdbId}``,
    ``series_resume:{clerkId}:{seriesId}:{tmdbId}``). If ``clerkId`` could hold a colon, user
    ``kid:y`` with title ``z`` and user ``kid`` with title ``y:z`` would share one key (one
    reads, overwrites and deletes the other's position). With every segment but the last
    colon-free, a key's first colons separate its segments again: one key, one owner, one
    title. The last segment (``tmdbId``) may keep its colons (``tv:12``), as data written by
    the Express service may have them; ``clerkId`` is a user id of the identity provider
    (Clerk's are ``user_…``), and ``seriesId`` is new.
    """
    return KEY_SEPARATOR not in value


def valid_clerk_id(clerk_id: str) -> bool:
    """A ``clerkId`` (the token's ``sub``) that can own resume keys: non-empty, no ``:``."""
    return bool(clerk_id) and valid_key_segment(clerk_id)


def check_clerk_id(clerk_id: str) -> str:
    """A ``clerkId`` taken from a path, or ``InvalidProgress``."""
    if not valid_clerk_id(clerk_id):
        raise InvalidProgress({"clerkId": CLERK_ID_MESSAGE})
    return clerk_id


def valid_series_id(series_id: str | int) -> bool:
    """A ``seriesId``: a ``tmdbId`` (``valid_tmdb_id``) that is also a key segment (no ``:``)."""
    return valid_tmdb_id(series_id) and valid_key_segment(str(series_id))


def valid_tmdb_id(tmdb_id: str | int) -> bool:
    """1-64 characters and no ``/`` (a path segment must be able to name it again)."""
    if isinstance(tmdb_id, int):
        return tmdb_id >= 0 and len(str(tmdb_id)) <= MAX_TMDB_ID_LENGTH
    return 1 <= len(tmdb_id) <= MAX_TMDB_ID_LENGTH and "/" not in tmdb_id


def check_tmdb_id(tmdb_id: str) -> str:
    """A ``tmdbId`` taken from a path, or ``InvalidProgress``."""
    if not valid_tmdb_id(tmdb_id):
        raise InvalidProgress({"tmdbId": TMDB_ID_MESSAGE})
    return tmdb_id


def parse_limit(text: str | None) -> int:
    """The ``?limit=`` of a list request: default 100, 1-500."""
    if text is None:
        return DEFAULT_LIST_LIMIT
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or not 1 <= int(stripped) <= MAX_LIST_LIMIT:
        raise InvalidProgress({"limit": LIMIT_MESSAGE})
    return int(stripped)


def is_finished(current_time: float, duration: float | None) -> bool:
    """Watched to at least 90 % of a known duration: the title no longer needs resuming."""
    return duration is not None and duration > 0 and current_time >= FINISHED_FRACTION * duration


def progress_saved(save: SaveProgress, actor: str, now: datetime) -> ProgressSaved:
    """The event recording ``save`` at ``now``, with the finished rule decided once, here."""
    return ProgressSaved(
        occurred_at=now,
        actor=actor,
        clerk_id=save.clerk_id,
        tmdb_id=str(save.tmdb_id),
        current_time=save.current_time,
        duration=save.duration,
        finished=is_finished(save.current_time, save.duration),
    )


def progress_deleted(clerk_id: str, tmdb_id: str, actor: str, now: datetime) -> ProgressDeleted:
    """The event removing a title's resume position."""
    return ProgressDeleted(occurred_at=now, actor=actor, clerk_id=clerk_id, tmdb_id=tmdb_id)


def expires_at(updated_at: datetime) -> datetime:
    """When a resume position saved at ``updated_at`` lapses (the Express service's TTL)."""
    return updated_at + RESUME_TTL


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, the unit of ``PXAT`` and of the per-user index."""
    return (moment - _EPOCH) // _MILLISECOND


def resume_value(current_time: float, updated_at: str) -> bytes:
    """The stored JSON, byte-compatible with the Express service (whole seconds stay ints)."""
    number = int(current_time) if float(current_time).is_integer() else current_time
    return msgspec.json.encode({"currentTime": number, "updatedAt": updated_at})
