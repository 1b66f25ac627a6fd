"""The catalog's pure rules: seed validation messages, optional fields, paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from domain.catalog import (
    MSG_AGE,
    MSG_DAILY_LIMIT,
    MSG_DESCRIPTION,
    MSG_DURATION,
    MSG_KIDS_MODE,
    MSG_LIMIT,
    MSG_NAME,
    MSG_NUL,
    MSG_PAGE,
    MSG_TIMEZONE,
    MSG_TITLE,
    MSG_URL,
    Mode,
    Page,
    PageMetadata,
    Problem,
    ProfileCreate,
    ProfileUpdate,
    VideoCreate,
    VideoUpdate,
    check_profile,
    check_video,
    is_http_url,
    page_metadata,
    parse_page,
    profile_values,
    video_values,
)
from domain.numbers import json_integer
from tests.catalog_bodies import seed_video_body


def test_seed_messages_are_word_for_word() -> None:
    assert MSG_NAME == "Name must be between 2 and 50 characters"
    assert MSG_AGE == "Age must be between 1 and 17"
    assert MSG_TITLE == "Title is required"
    assert MSG_URL == "Invalid URL format"


# Profiles -----------------------------------------------------------------------------------


def test_valid_profile_has_no_problems() -> None:
    assert check_profile({"name": "Bobby", "age": 7}, "create") == []


@pytest.mark.parametrize("name", [None, "", "B", " B ", "x" * 51, 42])
def test_bad_name_gets_the_seed_message(name: Any) -> None:
    assert check_profile({"name": name, "age": 7}, "create") == [Problem("name", MSG_NAME)]


@pytest.mark.parametrize("name", ["Bo", "x" * 50])
def test_name_limits_are_inclusive(name: str) -> None:
    assert check_profile({"name": name, "age": 7}, "create") == []


@pytest.mark.parametrize("age", [None, 0, 18, -1, 7.5, "7", True])
def test_bad_age_gets_the_seed_message(age: Any) -> None:
    assert check_profile({"name": "Bobby", "age": age}, "create") == [Problem("age", MSG_AGE)]


@pytest.mark.parametrize("age", [1, 17])
def test_age_limits_are_inclusive(age: int) -> None:
    assert check_profile({"name": "Bobby", "age": age}, "create") == []


def test_missing_name_and_age_are_both_reported() -> None:
    assert check_profile({}, "create") == [Problem("name", MSG_NAME), Problem("age", MSG_AGE)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("avatar_url", "ftp://example.com/a.png", MSG_URL),
        ("avatar_url", "not a url", MSG_URL),
        ("avatar_url", 5, MSG_URL),
        ("daily_limit_minutes", -1, MSG_DAILY_LIMIT),
        ("daily_limit_minutes", 1441, MSG_DAILY_LIMIT),
        ("daily_limit_minutes", "60", MSG_DAILY_LIMIT),
        ("daily_limit_minutes", None, MSG_DAILY_LIMIT),
        ("timezone", "Mars/Olympus", MSG_TIMEZONE),
        ("timezone", "", MSG_TIMEZONE),
        ("timezone", "../../etc/passwd", MSG_TIMEZONE),
        ("kids_mode", "yes", MSG_KIDS_MODE),
        ("kids_mode", 1, MSG_KIDS_MODE),
    ],
)
def test_optional_profile_fields_are_checked(field: str, value: Any, message: str) -> None:
    body = {"name": "Bobby", "age": 7, field: value}
    assert check_profile(body, "create") == [Problem(field, message)]


@pytest.mark.parametrize("limit", [0, 1440])
def test_daily_limit_bounds_are_inclusive(limit: int) -> None:
    assert check_profile({"name": "Bo", "age": 3, "daily_limit_minutes": limit}, "create") == []


def test_profile_defaults_fill_in_on_create() -> None:
    values = profile_values(_body(ProfileCreate, {"name": "  Bobby ", "age": 7}), "Europe/Paris")
    assert values == {
        "name": "Bobby",
        "age": 7,
        "avatar_url": None,
        "daily_limit_minutes": 60,
        "timezone": "Europe/Paris",
        "kids_mode": False,
        "weekday_limits": dict.fromkeys(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        ),
        "bedtime": None,
        "warning_minutes": 5,
        "limit_action": "stop",
    }


def test_profile_update_checks_and_keeps_only_fields_present() -> None:
    assert check_profile({"age": 9}, "update") == []
    assert check_profile({"name": "B"}, "update") == [Problem("name", MSG_NAME)]
    assert profile_values(_body(ProfileUpdate, {"age": 9, "unknown": 1}), "UTC") == {"age": 9}


def test_avatar_can_be_cleared_with_null() -> None:
    assert check_profile({"avatar_url": None}, "update") == []


# Videos -------------------------------------------------------------------------------------


def test_valid_video_has_no_problems() -> None:
    assert check_video(seed_video_body(), "create") == []


def test_missing_title_and_bad_url_match_the_seed_example() -> None:
    assert check_video({"title": "", "url": "nope"}, "create") == [
        Problem("title", MSG_TITLE),
        Problem("url", MSG_URL),
    ]


@pytest.mark.parametrize("title", [None, "", "   ", "x" * 201, 3])
def test_bad_title_is_required_message(title: Any) -> None:
    assert check_video({"title": title, "url": "http://e.com/v"}, "create") == [
        Problem("title", MSG_TITLE)
    ]


@pytest.mark.parametrize(
    "url",
    [None, "", "example.com/v.mp4", "javascript:alert(1)", "file:///etc/passwd", "http://", 1],
)
def test_bad_url_is_invalid_url_format(url: Any) -> None:
    assert check_video({"title": "T", "url": url}, "create") == [Problem("url", MSG_URL)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("thumbnail_url", "ftp://e.com/t.jpg", MSG_URL),
        ("description", "x" * 5001, MSG_DESCRIPTION),
        ("description", 5, MSG_DESCRIPTION),
        ("duration", -1, MSG_DURATION),
        ("duration", 1.5, MSG_DURATION),
        ("duration", "600", MSG_DURATION),
        ("duration", 2**31, MSG_DURATION),
    ],
)
def test_optional_video_fields_are_checked(field: str, value: Any, message: str) -> None:
    body = {"title": "T", "url": "https://e.com/v.mp4", field: value}
    assert check_video(body, "create") == [Problem(field, message)]


@pytest.mark.parametrize("field", ["title", "description"])
def test_nul_characters_are_refused_in_video_text(field: str) -> None:
    body = {"title": "T", "url": "https://e.com/v", field: "a\x00b"}
    assert check_video(body, "create") == [Problem(field, MSG_NUL)]


def test_description_of_5000_and_duration_0_are_fine() -> None:
    body = {"title": "T", "url": "https://e.com/v", "description": "x" * 5000, "duration": 0}
    assert check_video(body, "create") == []


def test_video_values_default_optional_fields_to_null() -> None:
    assert video_values(_body(VideoCreate, {"title": " T ", "url": "https://e.com/v"})) == {
        "title": "T",
        "url": "https://e.com/v",
        "description": None,
        "thumbnail_url": None,
        "duration": None,
        "min_age": 0,
    }


def test_video_update_checks_only_fields_present() -> None:
    assert check_video({"duration": 5}, "update") == []
    assert check_video({"url": "nope"}, "update") == [Problem("url", MSG_URL)]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/a", True),
        ("HTTP://EXAMPLE.COM", True),
        ("https://example.com/a b", False),
        ("https:///path-only", False),
        ("https://" + "a" * 2048, False),
    ],
)
def test_is_http_url(url: str, ok: bool) -> None:
    assert is_http_url(url) is ok


# Paging -------------------------------------------------------------------------------------


def test_page_defaults() -> None:
    assert parse_page(None, None, 20) == (Page(1, 20), [])


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", "9999999999", "²", "①", "\u0661"])
def test_bad_page_is_a_problem(page: str) -> None:
    assert parse_page(page, None, 10) == (None, [Problem("page", MSG_PAGE)])


@pytest.mark.parametrize("limit", ["0", "101", "x", "-5", "", "²", "①"])
def test_bad_limit_is_a_problem(limit: str) -> None:
    assert parse_page(None, limit, 10) == (None, [Problem("limit", MSG_LIMIT)])


def test_limit_bounds_are_inclusive() -> None:
    assert parse_page("2", "1", 10)[0] == Page(2, 1)
    assert parse_page("1", "100", 10)[0] == Page(1, 100)


def test_offset_is_pages_before_this_one() -> None:
    assert Page(3, 20).offset == 40


def test_metadata_of_an_empty_list() -> None:
    assert page_metadata(Page(1, 10), 0) == PageMetadata(1, 10, 0, 0, False, False)


def test_metadata_matches_the_seed_example() -> None:
    meta = page_metadata(Page(1, 20), 45)
    assert (meta.totalPages, meta.hasNextPage, meta.hasPrevPage) == (3, True, False)


def test_metadata_of_the_last_page() -> None:
    meta = page_metadata(Page(3, 20), 45)
    assert (meta.hasNextPage, meta.hasPrevPage) == (False, True)


def test_metadata_of_a_page_past_the_end() -> None:
    meta = page_metadata(Page(5, 20), 45)
    assert (meta.totalPages, meta.hasNextPage, meta.hasPrevPage) == (3, False, True)


def test_a_whole_float_is_a_json_integer() -> None:
    """JSON Schema's integer counts 5.0 as one, and clients holding doubles send it so."""
    assert json_integer(5.0) == 5 and json_integer(5) == 5
    assert json_integer(5.5) is None and json_integer(True) is None and json_integer("5") is None
    assert json_integer(float("inf")) is None and json_integer(1e300) is None


# The body structs and the checks: one set of bounds -----------------------------------------


def _body(kind: type[msgspec.Struct], body: dict[str, Any]) -> Any:
    """A checked body as the API converts it (``api.bodies``)."""
    return msgspec.convert(body, kind, strict=False)


def _converts(kind: type[msgspec.Struct], body: dict[str, Any]) -> bool:
    try:
        _body(kind, body)
    except msgspec.ValidationError:
        return False
    return True


# Each value either side of a bound: the struct's ``Meta`` (the OpenAPI schema) must take
# exactly what the check takes.
PROFILE_EDGES: dict[str, list[Any]] = {
    "name": [
        "B",
        "Bo",
        " \u3000Bo\u2029 ",
        "x" * 50,
        "x" * 51,
        "\t" + "x" * 50 + "\n",
        "x" + " " * 48 + "x",
        "x" + " " * 49 + "x",
    ],
    "age": [0, 1, 17, 18, 5.0, 5.5],
    "daily_limit_minutes": [-1, 0, 1440, 1441],
    "avatar_url": [
        "HTTPS://e.com/a.png",
        "ftp://e.com/a.png",
        "https://e.com/" + "a" * 2034,
        "https://e.com/" + "a" * 2035,
        None,
    ],
    "warning_minutes": [0, 60, 61],
    "weekday_limits": [{"monday": 1440, "sunday": None}, {"monday": 1441}, {"funday": 10}, None],
    "limit_action": ["finish_video", "pause"],
    "kids_mode": [True, None],
}
VIDEO_EDGES: dict[str, list[Any]] = {
    "title": ["", " ", "T", "x" * 200, "x" * 201],
    "description": ["x" * 5000, "x" * 5001, None],
    "duration": [-1, 0, 2**31 - 1, 2**31, None],
    "min_age": [0, 17, 18],
    "url": ["Http://e.com/v", "https://e.com/" + "v" * 2035],
}


Rule = Callable[[dict[str, Any], Mode], list[Problem]]
PROFILES = (ProfileCreate, ProfileUpdate, check_profile, {"name": "Bo", "age": 7})
VIDEOS = (VideoCreate, VideoUpdate, check_video, {"title": "T", "url": "https://e.com/v"})


@pytest.mark.parametrize(
    ("kinds", "field", "value"),
    [
        (kinds, field, value)
        for kinds, edges in ((PROFILES, PROFILE_EDGES), (VIDEOS, VIDEO_EDGES))
        for field, values in edges.items()
        for value in values
    ],
)
def test_body_structs_bound_what_the_checks_bound(
    kinds: tuple[type[msgspec.Struct], type[msgspec.Struct], Rule, dict[str, Any]],
    field: str,
    value: Any,
) -> None:
    create, update, check, required = kinds
    new = {**required, field: value}
    assert _converts(create, new) == (check(new, "create") == [])
    assert _converts(update, {field: value}) == (check({field: value}, "update") == [])


def test_an_update_keeps_only_the_fields_sent_and_a_null_clears() -> None:
    change = _body(VideoUpdate, {"thumbnail_url": None, "duration": 7.0})
    assert video_values(change) == {"thumbnail_url": None, "duration": 7}
