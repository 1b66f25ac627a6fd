"""The parents' catalog rules: what a valid child profile and video look like, and paging.

Pure functions over plain data. Each rule returns the seed's message (seed 004) so the API can
answer ``{"errors": [...]}`` without deciding anything itself. The records are what the store
returns and what other features (watch sessions, stats) read.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from domain.numbers import json_integer, whole_in
from domain.policy import (
    DEFAULT_WARNING_MINUTES,
    POLICY_FIELDS,
    check_min_age,
    check_policy_fields,
    weekday_limits_value,
)

MSG_NAME = "Name must be between 2 and 50 characters"
MSG_AGE = "Age must be between 1 and 17"
MSG_AVATAR = "Invalid URL format"
MSG_DAILY_LIMIT = "Daily limit must be an integer between 0 and 1440"
MSG_TIMEZONE = "Timezone must be an IANA time zone name"
MSG_KIDS_MODE = "kids_mode must be a boolean"
MSG_TITLE = "Title is required"
MSG_URL = "Invalid URL format"
MSG_DESCRIPTION = "Description must be at most 5000 characters"
MSG_DURATION = "Duration must be a non-negative integer"
MSG_PAGE = "Page must be a positive integer"
MSG_LIMIT = "Limit must be an integer between 1 and 100"
MSG_NUL = "Text must not contain NUL characters"

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 5000
MAX_TITLE = 200
MAX_DAILY_LIMIT = 1440
MAX_PAGE_LIMIT = 100
MAX_DURATION = 2**31 - 1  # the column is a 32-bit integer


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


def page_metadata(page: Page, total: int) -> dict[str, Any]:
    """The seed's ``metadata`` object for ``total`` items."""
    pages = math.ceil(total / page.limit) if total else 0
    return {
        "page": page.page,
        "limit": page.limit,
        "totalCount": total,
        "totalPages": pages,
        "hasNextPage": page.page < pages,
        "hasPrevPage": page.page > 1,
    }


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
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _whole_numbers(values: dict[str, Any], *names: str) -> dict[str, Any]:
    """Valid integer fields as ints (``5.0`` stored as ``5``)."""
    for name in names:
        if values.get(name) is not None:
            values[name] = json_integer(values[name])
    return values


Mode = Literal["create", "update"]

PROFILE_FIELDS = (
    "name",
    "age",
    "avatar_url",
    "daily_limit_minutes",
    "timezone",
    "kids_mode",
    *POLICY_FIELDS,
)
VIDEO_FIELDS = ("title", "description", "url", "thumbnail_url", "duration", "min_age")


def check_profile(body: dict[str, Any], mode: Mode) -> list[Problem]:
    """Problems with a profile body; on ``update`` only the fields present are checked."""
    problems: list[Problem] = []
    if mode == "create" or "name" in body:
        name = body.get("name")
        if not isinstance(name, str) or not 2 <= len(name.strip()) <= 50:
            problems.append(Problem("name", MSG_NAME))
    if mode == "create" or "age" in body:
        age = body.get("age")
        if whole_in(age, 1, 17) is None:
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


def profile_values(body: dict[str, Any], mode: Mode, default_timezone: str) -> dict[str, Any]:
    """The column values of a valid profile body (defaults filled in on create)."""
    values = _whole_numbers(
        {k: body[k] for k in PROFILE_FIELDS if k in body},
        "age",
        "daily_limit_minutes",
        "warning_minutes",
    )
    if "name" in values:
        values["name"] = values["name"].strip()
    if "weekday_limits" in values:
        values["weekday_limits"] = weekday_limits_value(values["weekday_limits"])
    if mode == "create":
        values.setdefault("avatar_url", None)
        values.setdefault("daily_limit_minutes", 60)
        values.setdefault("timezone", default_timezone)
        values.setdefault("kids_mode", False)
        values.setdefault("weekday_limits", weekday_limits_value(None))
        values.setdefault("bedtime", None)
        values.setdefault("warning_minutes", DEFAULT_WARNING_MINUTES)
        values.setdefault("limit_action", "stop")
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


def video_values(body: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """The column values of a valid video body (optional fields default to null on create)."""
    values = _whole_numbers({k: body[k] for k in VIDEO_FIELDS if k in body}, "duration", "min_age")
    if "title" in values:
        values["title"] = values["title"].strip()
    if mode == "create":
        for key in ("description", "thumbnail_url", "duration"):
            values.setdefault(key, None)
        values.setdefault("min_age", 0)
    return values
