"""What the progress routes (titles and series) take and answer, for their OpenAPI operations.

The bodies are parsed by ``domain.progress.parse_save`` and
``domain.series_progress.parse_series_save`` (so that every invalid field is reported with the
seed's message); the structs below document what those parsers accept, with the bounds the
domain defines. The answers are the read models' own structs (``services.progress``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from domain.progress import MAX_LIST_LIMIT, MAX_SECONDS, MAX_TMDB_ID_LENGTH
from services.progress import ResumeEntry, ResumePosition
from services.series_progress import SeriesEntry, SeriesPosition

__all__ = [
    "ClerkId",
    "ListLimit",
    "ProgressSave",
    "ResumeEntry",
    "ResumePosition",
    "SeriesEntry",
    "SeriesId",
    "SeriesPosition",
    "SeriesProgressSave",
]

# Path segments that stand before another one in a resume key hold no ``:``
# (``domain.progress.valid_key_segment``); a series id is otherwise a tmdbId (no ``/``).
ClerkId = Annotated[str, Meta(min_length=1, pattern="^[^:]+$")]
SeriesId = Annotated[str, Meta(min_length=1, max_length=MAX_TMDB_ID_LENGTH, pattern="^[^:/]+$")]
ListLimit = Annotated[int, Meta(ge=1, le=MAX_LIST_LIMIT)]

# In a body, strings also hold no NUL (``api.limits``).
_BodyClerkId = Annotated[str, Meta(min_length=1, pattern="^[^:\\x00]+$")]
_TitleId = (
    Annotated[str, Meta(min_length=1, max_length=MAX_TMDB_ID_LENGTH, pattern="^[^/\\x00]+$")]
    | Annotated[int, Meta(ge=0)]
)
_SeriesBodyId = (
    Annotated[str, Meta(min_length=1, max_length=MAX_TMDB_ID_LENGTH, pattern="^[^:/\\x00]+$")]
    | Annotated[int, Meta(ge=0)]
)
_Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]
_Duration = Annotated[float, Meta(gt=0, le=MAX_SECONDS)]


class ProgressSave(msgspec.Struct, frozen=True, rename="camel"):
    """``POST /api/progress``."""

    clerk_id: _BodyClerkId
    tmdb_id: _TitleId
    current_time: _Seconds
    duration: _Duration | None = None


class SeriesProgressSave(msgspec.Struct, frozen=True, rename="camel"):
    """``POST /api/progress/series``: a title save that also names its series."""

    clerk_id: _BodyClerkId
    series_id: _SeriesBodyId
    tmdb_id: _TitleId
    current_time: _Seconds
    duration: _Duration | None = None
