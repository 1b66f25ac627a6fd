from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.events import ProgressSaved
from domain.progress import (
    InvalidProgress,
    MalformedBody,
    SaveProgress,
    check_clerk_id,
    check_tmdb_id,
    epoch_ms,
    expires_at,
    is_finished,
    parse_limit,
    parse_save,
    progress_deleted,
    progress_saved,
    resume_value,
    valid_clerk_id,
    valid_key_segment,
    valid_series_id,
)
from tests.progress_bodies import encoded, refused_fields

NOW = datetime(2025, 7, 30, 9, 23, 45, 678_901, tzinfo=UTC)


def body(**fields: object) -> bytes:
    return encoded({"clerkId": "user_1", "tmdbId": "12345", "currentTime": 3600}, fields)


def invalid_fields(raw: bytes) -> dict[str, str]:
    return refused_fields(parse_save, raw)


def test_seed_body_parses() -> None:
    assert parse_save(body()) == SaveProgress("user_1", "12345", 3600.0)


def test_integer_tmdb_id_is_stored_as_its_decimal_string() -> None:
    assert parse_save(body(tmdbId=12345)).tmdb_id == "12345"


def test_unknown_fields_are_ignored() -> None:
    assert parse_save(body(device="tv")).current_time == 3600


def test_duration_is_optional_and_null_means_unknown() -> None:
    assert parse_save(body(duration=None)).duration is None
    assert parse_save(body(duration=7200)).duration == 7200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"clerkId": ...}, "clerkId"),
        ({"clerkId": ""}, "clerkId"),
        ({"clerkId": 7}, "clerkId"),
        ({"tmdbId": ...}, "tmdbId"),
        ({"tmdbId": ""}, "tmdbId"),
        ({"tmdbId": "x" * 65}, "tmdbId"),
        ({"tmdbId": "a/b"}, "tmdbId"),
        ({"tmdbId": True}, "tmdbId"),
        ({"tmdbId": -1}, "tmdbId"),
        ({"tmdbId": 1.5}, "tmdbId"),
        ({"currentTime": ...}, "currentTime"),
        ({"currentTime": "3600"}, "currentTime"),
        ({"currentTime": True}, "currentTime"),
        ({"currentTime": -0.5}, "currentTime"),
        ({"currentTime": 604_800.5}, "currentTime"),
        ({"duration": 0}, "duration"),
        ({"duration": "90"}, "duration"),
        ({"duration": 604_801}, "duration"),
    ],
)
def test_each_invalid_field_is_named(fields: dict[str, object], field: str) -> None:
    assert set(invalid_fields(body(**fields))) == {field}


def test_number_beyond_a_double_is_a_field_error_not_malformed() -> None:
    raw = b'{"clerkId":"u","tmdbId":"1","currentTime":1e400}'
    assert set(invalid_fields(raw)) == {"currentTime"}


def test_every_wrong_field_is_reported_at_once() -> None:
    assert set(invalid_fields(b'{"tmdbId": false}')) == {"clerkId", "tmdbId", "currentTime"}


def test_boundaries_are_inclusive() -> None:
    assert parse_save(body(currentTime=0)).current_time == 0
    assert parse_save(body(currentTime=604_800)).current_time == 604_800
    assert parse_save(body(tmdbId="x" * 64)).tmdb_id == "x" * 64


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a":1,}'])
def test_malformed_json_is_malformed_body(raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="Malformed JSON"):
        parse_save(raw)


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_non_object_json_is_malformed_body(raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="JSON object"):
        parse_save(raw)


def test_path_tmdb_id_over_64_characters_is_invalid() -> None:
    assert check_tmdb_id("550") == "550"
    with pytest.raises(InvalidProgress):
        check_tmdb_id("9" * 65)


@pytest.mark.parametrize(("text", "limit"), [(None, 100), ("1", 1), ("500", 500), (" 20 ", 20)])
def test_limit_defaults_to_100_and_allows_1_to_500(text: str | None, limit: int) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize("text", ["0", "501", "-1", "ten", "", "1.5", "²"])
def test_limit_outside_1_to_500_is_invalid(text: str) -> None:
    with pytest.raises(InvalidProgress) as caught:
        parse_limit(text)
    assert set(caught.value.details) == {"limit"}


@pytest.mark.parametrize(
    ("current_time", "duration", "finished"),
    [
        (90, 100, True),
        (89.99, 100, False),
        (100, 100, True),
        (5000, None, False),
        (0, 100, False),
    ],
)
def test_finished_at_90_percent_of_a_known_duration(
    current_time: float, duration: float | None, finished: bool
) -> None:
    assert is_finished(current_time, duration) is finished


def test_saved_event_records_server_time_actor_and_finished() -> None:
    save = parse_save(body(currentTime=95, duration=100, tmdbId=7))
    event = progress_saved(save, "user_1", NOW)
    assert event == ProgressSaved(
        occurred_at=NOW,
        actor="user_1",
        clerk_id="user_1",
        tmdb_id="7",
        current_time=95,
        duration=100,
        finished=True,
    )


def test_deleted_event_names_the_title() -> None:
    event = progress_deleted("user_1", "7", "user_1", NOW)
    assert (event.clerk_id, event.tmdb_id, event.occurred_at) == ("user_1", "7", NOW)


def test_resume_value_matches_the_express_format() -> None:
    assert resume_value(3600.0, "2025-07-30T09:23:45.678Z") == (
        b'{"currentTime":3600,"updatedAt":"2025-07-30T09:23:45.678Z"}'
    )
    assert resume_value(12.5, "x") == b'{"currentTime":12.5,"updatedAt":"x"}'


def test_expiry_is_30_days_after_update_in_whole_milliseconds() -> None:
    assert epoch_ms(NOW) == 1_753_867_425_678
    assert epoch_ms(expires_at(NOW)) - epoch_ms(NOW) == 30 * 86_400_000


@pytest.mark.parametrize("raw", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_deeply_nested_json_is_malformed_not_a_crash(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_save(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\xff\xfe", "title": "\xff"}',
        b'{"clerkId": "\xff", "tmdbId": "1", "currentTime": 1}',
        b"\xff\xfe\x00",
    ],
)
def test_invalid_utf8_is_malformed_not_a_crash(raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="must be UTF-8 encoded JSON"):
        parse_save(raw)


@pytest.mark.parametrize("clerk_id", ["kid42:y", ":", "user_1:"])
def test_a_colon_in_clerk_id_is_invalid(clerk_id: str) -> None:
    """``resume:{clerkId}:{tmdbId}``: a colon would let two users' titles share one key."""
    with pytest.raises(InvalidProgress) as caught:
        parse_save(body(clerkId=clerk_id))
    assert set(caught.value.details) == {"clerkId"}
    with pytest.raises(InvalidProgress):
        check_clerk_id(clerk_id)


def test_key_segments_before_the_last_hold_no_colon() -> None:
    assert valid_clerk_id("user_2abc") and valid_series_id("1399") and valid_series_id(1399)
    assert not valid_clerk_id("kid:y") and not valid_series_id("s:1")
    assert not valid_series_id("a/b") and not valid_series_id("x" * 65)
    assert not valid_key_segment("a:b") and valid_key_segment("a|b")
