"""The parents' catalog rules: what a valid child profile and video look like, and paging.

Pure functions over plain data. Each rule returns the seed's message (seed 004) so the API can
answer ``{"errors": [...]}`` without deciding anything itself. The records are what the store
returns and what other features (watch sessions, stats) read.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec
from msgspec import UNSET, Meta, UnsetType

from domain.numbers import whole_in
from domain.policy import (
    DEFAULT_WARNING_MINUTES,
    Bedtime,
    LimitAction,
    MinAge,
    WarningMinutes,
    WeekdayLimits,
    check_min_age,
    check_policy_fields,
    weekday_limits_value,
)
from domain.text import NO_NUL, stripped_pattern

# Each bound is written once, here: the checks below read these numbers, and so do the body
# structs' ``Meta`` constraints (``ProfileCreate`` ...), from which the OpenAPI document is made.
MIN_NAME, MAX_NAME = 2, 50  # after surrounding whitespace is stripped
MIN_AGE, MAX_AGE = 1, 17
DEFAULT_DAILY_LIMIT, MAX_DAILY_LIMIT = 60, 1440
MAX_TIMEZONE = 64
MAX_URL_LENGTH = 2048
MAX_TITLE = 200  # after stripping, at least 1
MAX_DESCRIPTION = 5000
MAX_DURATION = 2**31 - 1  # the column is a 32-bit integer
MAX_PAGE_LIMIT = 100

MSG_NAME = f"Name must be between {MIN_NAME} and {MAX_NAME} characters"
MSG_AGE = f"Age must be between {MIN_AGE} and {MAX_AGE}"
MSG_AVATAR = "Invalid URL format"
MSG_DAILY_LIMIT = f"Daily limit must be an integer between 0 and {MAX_DAILY_LIMIT}"
MSG_TIMEZONE = "Timezone must be an IANA time zone name"
MSG_KIDS_MODE = "kids_mode must be a boolean"
MSG_TITLE = "Title is required"
MSG_URL = "Invalid URL format"
MSG_DESCRIPTION = f"Description must be at most {MAX_DESCRIPTION} characters"
MSG_DURATION = "Duration must be a non-negative integer"
MSG_PAGE = "Page must be a positive integer"
MSG_LIMIT = f"Limit must be an integer between 1 and {MAX_PAGE_LIMIT}"
MSG_NUL = "Text must not contain NUL characters"

# The body fields' types with their constraints: what ``check_profile`` / ``check_video`` accept,
# said as JSON Schema. Text is bounded after stripping (the seed's trim-then-length rule), so
# its bounds are a pattern (``domain.text``); ``is_http_url`` takes the scheme in any case.
Name = Annotated[str, Meta(pattern=stripped_pattern(MIN_NAME, MAX_NAME))]
Age = Annotated[int, Meta(ge=MIN_AGE, le=MAX_AGE)]
DailyLimit = Annotated[int, Meta(ge=0, le=MAX_DAILY_LIMIT)]
HttpUrl = Annotated[
    str,
    Meta(
        max_length=MAX_URL_LENGTH,
        pattern="^[hH][tT][tT][pP][sS]?://",
        extra_json_schema={"format": "uri"},
    ),
]
Timezone = Annotated[
    str,
    Meta(
        max_length=MAX_TIMEZONE,
        description="IANA time zone, e.g. Europe/Paris",
        extra_json_schema={"enum": sorted(available_timezones())},
    ),
]
Title = Annotated[str, Meta(pattern=stripped_pattern(1, MAX_TITLE))]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION, pattern=NO_NUL)]
Duration = Annotated[int, Meta(ge=0, le=MAX_DURATION)]


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A child's profile as stored."""

    id: int
    user_id: int
    name: str
    age: int
    avatar_url: str | None
    daily_limit_minutes: int
    timezone: str
    kids_mode: bool
    created_at: datetime
    updated_at: datetime
    # Parental policy (``domain.policy``): weekday entries (every day named, null when unset),
    # bedtime as the parent gave it (null, one window, or per day), warning and limit action.
    weekday_limits: dict[str, int | None] | None = None
    bedtime: dict[str, Any] | None = None
    warning_minutes: int = DEFAULT_WARNING_MINUTES
    limit_action: str = "stop"


class Video(msgspec.Struct, frozen=True, kw_only=True):
    """A video as stored: either an external ``url`` or an uploaded ``file_path`` (or both)."""

    id: int
    user_id: int
    title: str
    description: str | None
    url: str | None
    thumbnail_url: str | None
    duration: int | None
    file_path: str | None
    thumbnail_path: str | None
    size: int | None
    mime_type: str | None
    created_at: datetime
    updated_at: datetime
    min_age: int = 0  # a profile younger than this may not watch it


class Problem(msgspec.Struct, frozen=True):
    """One invalid field: which, and the message the client sees."""

    path: str
    msg: str


class Page(msgspec.Struct, frozen=True):
    """Which slice of a list the client asked for."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


class PageMetadata(msgspec.Struct, frozen=True):
    """The seed's paging block (camelCase, as the seed names it)."""

    page: int
    limit: int
    totalCount: int
    totalPages: int
    hasNextPage: bool
    hasPrevPage: bool


def page_metadata(page: Page, total: int) -> PageMetadata:
    """The seed's ``metadata`` object for ``total`` items."""
    pages = math.ceil(total / page.limit) if total else 0
    return PageMetadata(
        page=page.page,
        limit=page.limit,
        totalCount=total,
        totalPages=pages,
        hasNextPage=page.page < pages,
        hasPrevPage=page.page > 1,
    )


def parse_page(
    page: str | None, limit: str | None, default_limit: int
) -> tuple[Page | None, list[Problem]]:
    """``?page=&limit=`` as given; a bad value is a problem, never silently clamped."""
    problems: list[Problem] = []
    page_number = _positive_int(page, 1)
    if page_number is None:
        problems.append(Problem("page", MSG_PAGE))
    size = _positive_int(limit, default_limit)
    if size is None or size > MAX_PAGE_LIMIT:
        problems.append(Problem("limit", MSG_LIMIT))
    if problems or page_number is None or size is None:
        return None, problems
    return Page(page_number, size), []


def _positive_int(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    stripped = text.strip()
    if not is_ascii_digits(stripped) or len(stripped) > 9:
        return None
    value = int(stripped)
    return value if value >= 1 else None


def is_ascii_digits(text: str) -> bool:
    """``0``-``9`` only: ``str.isdigit`` also takes ``²``, ``①`` and other scripts' digits,
    some of which ``int`` refuses (a 500) and some it reads (``١٢`` is 12)."""
    return text.isascii() and text.isdigit()


def is_http_url(value: object) -> bool:
    """An absolute http(s) URL with a host, of a storable length."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_LENGTH:
        return False
    if any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def is_timezone(value: object) -> bool:
    """An IANA zone name the server knows (``Europe/Paris``, ``UTC``)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TIMEZONE:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


Mode = Literal["create", "update"]


class ProfileCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A new child profile as the parent sends it (``check_profile`` words what is wrong)."""

    name: Name
    age: Age
    avatar_url: HttpUrl | None = None
    daily_limit_minutes: DailyLimit = DEFAULT_DAILY_LIMIT
    timezone: Timezone | UnsetType = UNSET  # the server's default zone
    kids_mode: bool = False
    weekday_limits: WeekdayLimits | None = None
    bedtime: Bedtime = None
    warning_minutes: WarningMinutes = DEFAULT_WARNING_MINUTES
    limit_action: LimitAction = "stop"


class ProfileUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The fields a parent changes; an absent field is ``UNSET`` and left as it is."""

    name: Name | UnsetType = UNSET
    age: Age | UnsetType = UNSET
    avatar_url: HttpUrl | UnsetType | None = UNSET
    daily_limit_minutes: DailyLimit | UnsetType = UNSET
    timezone: Timezone | UnsetType = UNSET
    kids_mode: bool | UnsetType = UNSET
    weekday_limits: WeekdayLimits | UnsetType | None = UNSET
    bedtime: Bedtime = UNSET
    warning_minutes: WarningMinutes | UnsetType = UNSET
    limit_action: LimitAction | UnsetType = UNSET


class VideoCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A video added by URL (``check_video`` words what is wrong)."""

    title: Title
    url: HttpUrl
    description: Description | None = None
    thumbnail_url: HttpUrl | None = None
    duration: Duration | None = None
    min_age: MinAge = 0


class VideoUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The fields a parent changes; an absent field is ``UNSET`` and left as it is."""

    title: Title | UnsetType = UNSET
    url: HttpUrl | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    thumbnail_url: HttpUrl | UnsetType | None = UNSET
    duration: Duration | UnsetType | None = UNSET
    min_age: MinAge | UnsetType = UNSET


def _given(body: msgspec.Struct) -> dict[str, Any]:
    """The fields of a body that are set, by name."""
    return {
        name: value
        for name in body.__struct_fields__
        if (value := getattr(body, name)) is not UNSET
    }


def check_profile(body: dict[str, Any], mode: Mode) -> list[Problem]:
    """Problems with a profile body; on ``update`` only the fields present are checked."""
    problems: list[Problem] = []
    if mode == "create" or "name" in body:
        name = body.get("name")
        if not isinstance(name, str) or not MIN_NAME <= len(name.strip()) <= MAX_NAME:
            problems.append(Problem("name", MSG_NAME))
    if mode == "create" or "age" in body:
        age = body.get("age")
        if whole_in(age, MIN_AGE, MAX_AGE) is None:
            problems.append(Problem("age", MSG_AGE))
    avatar = body.get("avatar_url")
    if avatar is not None and not is_http_url(avatar):
        problems.append(Problem("avatar_url", MSG_AVATAR))
    if "daily_limit_minutes" in body:
        limit = body["daily_limit_minutes"]
        if whole_in(limit, 0, MAX_DAILY_LIMIT) is None:
            problems.append(Problem("daily_limit_minutes", MSG_DAILY_LIMIT))
    if "timezone" in body and not is_timezone(body["timezone"]):
        problems.append(Problem("timezone", MSG_TIMEZONE))
    if "kids_mode" in body and not isinstance(body["kids_mode"], bool):
        problems.append(Problem("kids_mode", MSG_KIDS_MODE))
    problems += [Problem(path, msg) for path, msg in check_policy_fields(body)]
    return problems


def profile_values(body: ProfileCreate | ProfileUpdate, default_timezone: str) -> dict[str, Any]:
    """The column values of a checked profile body (with its defaults when it is new)."""
    values = _given(body)
    if "name" in values:
        values["name"] = values["name"].strip()
    if "weekday_limits" in values:
        values["weekday_limits"] = weekday_limits_value(values["weekday_limits"])
    if isinstance(body, ProfileCreate):
        values.setdefault("timezone", default_timezone)
    return values


def check_video(body: dict[str, Any], mode: Mode) -> list[Problem]:
    """Problems with a video body; on ``update`` only the fields present are checked."""
    problems = check_video_details(body, mode)
    if (mode == "create" or "url" in body) and not is_http_url(body.get("url")):
        problems.append(Problem("url", MSG_URL))
    thumbnail = body.get("thumbnail_url")
    if thumbnail is not None and not is_http_url(thumbnail):
        problems.append(Problem("thumbnail_url", MSG_URL))
    problems += [Problem(path, msg) for path, msg in check_min_age(body)]
    return problems


def check_video_details(body: dict[str, Any], mode: Mode) -> list[Problem]:
    """Title, description and duration: shared by JSON create/update and the upload form."""
    problems: list[Problem] = []
    if mode == "create" or "title" in body:
        title = body.get("title")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
            problems.append(Problem("title", MSG_TITLE))
    description = body.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > MAX_DESCRIPTION
    ):
        problems.append(Problem("description", MSG_DESCRIPTION))
    for field in ("title", "description"):  # a form upload's fields skip the JSON body checks
        text = body.get(field)
        if isinstance(text, str) and "\x00" in text:
            problems.append(Problem(field, MSG_NUL))
    duration = body.get("duration")
    if duration is not None and whole_in(duration, 0, MAX_DURATION) is None:
        problems.append(Problem("duration", MSG_DURATION))
    return problems


def video_values(body: VideoCreate | VideoUpdate) -> dict[str, Any]:
    """The column values of a checked video body (optional fields default to null when new)."""
    values = _given(body)
    if "title" in values:
        values["title"] = values["title"].strip()
    return values
