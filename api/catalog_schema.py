"""Request parsing and response shapes shared by the profile and video controllers (seed 004).

Bodies are taken as plain JSON objects and checked by ``domain.catalog`` so that every bad field
gets the seed's own message; responses carry the seed's fields plus additive ones.
"""

from __future__ import annotations

from typing import Any

import msgspec

from api.errors import ApiError, FieldError, InvalidFields, Location
from domain.catalog import Page, PageMetadata, Problem, Profile, Video, parse_page
from domain.policy import weekday_limits_value
from domain.timestamps import iso_ms


class ProfileOut(msgspec.Struct, frozen=True):
    """A child profile: the seed's fields, then ``timezone``, ``kids_mode``, ``updated_at``."""

    id: int
    user_id: int
    name: str
    age: int
    avatar_url: str | None
    daily_limit_minutes: int
    created_at: str
    timezone: str
    kids_mode: bool
    updated_at: str
    weekday_limits: dict[str, int | None]
    bedtime: dict[str, Any] | None
    warning_minutes: int
    limit_action: str


class ProfileList(msgspec.Struct, frozen=True):
    profiles: list[ProfileOut]
    metadata: PageMetadata


class VideoOut(msgspec.Struct, frozen=True):
    """A video: the seed's fields (list, create and upload responses) plus ``stream_url``.

    ``thumbnail_url`` is the parent's own URL when they gave one, else the route serving an
    uploaded thumbnail (``api.thumbnails``), else ``null``.
    """

    id: int
    title: str
    description: str | None
    url: str | None
    thumbnail_url: str | None
    duration: int | None
    user_id: int
    created_at: str
    file_path: str | None
    thumbnail_path: str | None
    size: int | None
    mime_type: str | None
    stream_url: str
    updated_at: str
    min_age: int


class VideoList(msgspec.Struct, frozen=True):
    videos: list[VideoOut]
    metadata: PageMetadata


def profile_out(profile: Profile) -> ProfileOut:
    return ProfileOut(
        id=profile.id,
        user_id=profile.user_id,
        name=profile.name,
        age=profile.age,
        avatar_url=profile.avatar_url,
        daily_limit_minutes=profile.daily_limit_minutes,
        created_at=iso_ms(profile.created_at),
        timezone=profile.timezone,
        kids_mode=profile.kids_mode,
        updated_at=iso_ms(profile.updated_at),
        weekday_limits=weekday_limits_value(profile.weekday_limits),
        bedtime=profile.bedtime,
        warning_minutes=profile.warning_minutes,
        limit_action=profile.limit_action,
    )


def video_out(video: Video) -> VideoOut:
    return VideoOut(
        id=video.id,
        title=video.title,
        description=video.description,
        url=video.url,
        thumbnail_url=video.thumbnail_url
        or (f"/api/videos/{video.id}/thumbnail" if video.thumbnail_path else None),
        duration=video.duration,
        user_id=video.user_id,
        created_at=iso_ms(video.created_at),
        file_path=video.file_path,
        thumbnail_path=video.thumbnail_path,
        size=video.size,
        mime_type=video.mime_type,
        stream_url=f"/api/videos/{video.id}/stream",
        updated_at=iso_ms(video.updated_at),
        min_age=video.min_age,
    )


def invalid(problems: list[Problem], location: Location = "body") -> InvalidFields:
    return InvalidFields([FieldError(p.path, p.msg, location) for p in problems])


def page_query(page: str | None, limit: str | None, default_limit: int) -> Page:
    """``?page=&limit=`` or a 400 naming the bad query parameters."""
    parsed, problems = parse_page(page, limit, default_limit)
    if parsed is None:
        raise invalid(problems, "query")
    return parsed


def json_object(data: Any) -> dict[str, Any]:
    """The request body as an object; anything else (array, number) is a 400."""
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return data


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


_encoder = msgspec.json.Encoder()


def answer_profile(profile: Profile) -> tuple[int, bytes]:
    """A created profile as its retry (same ``Idempotency-Key``) gets it again."""
    return 201, _encoder.encode(profile_out(profile))


def answer_video(video: Video) -> tuple[int, bytes]:
    """A created video as its retry (same ``Idempotency-Key``) gets it again."""
    return 201, _encoder.encode(video_out(video))
