"""Series progress rules without any store: validation, one current episode, newest wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.events import SeriesProgressDeleted, SeriesProgressSaved
from domain.progress import InvalidProgress, MalformedBody, epoch_ms
from domain.series_progress import (
    SERIES_ID_MESSAGE,
    SaveSeriesProgress,
    SeriesEvent,
    SeriesState,
    check_series_id,
    fold_series_events,
    parse_series_save,
    series_progress_saved,
    series_value,
)
from tests.progress_bodies import encoded, refused_fields

NOW = datetime(2025, 7, 30, 9, 23, 45, 678_901, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def body(**fields: object) -> bytes:
    base = {"clerkId": "user_1", "seriesId": "1399", "tmdbId": "63056", "currentTime": 600}
    return encoded(base, fields)


def invalid_fields(raw: bytes) -> dict[str, str]:
    return refused_fields(parse_series_save, raw)


def test_origin_body_parses_with_ids_as_strings() -> None:
    parsed = parse_series_save(body(seriesId=1399, tmdbId=63056, duration=3000))
    assert parsed == SaveSeriesProgress("user_1", "1399", "63056", 600.0, 3000.0)


@pytest.mark.parametrize(
    "series_id",
    [..., "", "a/b", "x" * 65, True, -1, -1.0, 1.5, 1e300, None, [], 10**65, "tv:12"],
)
def test_invalid_series_id_is_named_with_its_message(series_id: object) -> None:
    assert invalid_fields(body(seriesId=series_id)) == {"seriesId": SERIES_ID_MESSAGE}


def test_whole_float_series_id_is_the_integer() -> None:
    assert parse_series_save(body(seriesId=1399.0, tmdbId=63056.0)).series_id == "1399"
    assert invalid_fields(body(seriesId=1399.5)) == {"seriesId": SERIES_ID_MESSAGE}


def test_series_id_of_64_characters_is_valid() -> None:
    series_id = "tv-" + "x" * 61
    assert parse_series_save(body(seriesId=series_id)).series_id == series_id


def test_title_field_errors_and_series_id_are_reported_together() -> None:
    details = invalid_fields(body(seriesId=..., currentTime=-1, tmdbId=""))
    assert set(details) == {"seriesId", "currentTime", "tmdbId"}


def test_empty_object_names_every_required_field() -> None:
    assert set(invalid_fields(b"{}")) == {"clerkId", "seriesId", "tmdbId", "currentTime"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "Malformed JSON body"),
        (b"[]", "Request body must be a JSON object"),
        (b'{"clerkId":"u","seriesId":"\xff","tmdbId":"1","currentTime":1}', None),
    ],
)
def test_malformed_bodies_are_not_field_errors(raw: bytes, message: str | None) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_series_save(raw)
    if message is not None:
        assert str(caught.value) == message


def test_path_series_id_is_checked_like_the_body() -> None:
    assert check_series_id("1399") == "1399"
    with pytest.raises(InvalidProgress):
        check_series_id("a/b")


def test_save_at_90_percent_of_duration_is_recorded_finished() -> None:
    save = parse_series_save(body(currentTime=2700, duration=3000))
    assert series_progress_saved(save, "user_1", NOW).finished
    save = parse_series_save(body(currentTime=2699, duration=3000))
    assert not series_progress_saved(save, "user_1", NOW).finished


def test_stored_value_is_the_origin_shape() -> None:
    value = series_value("1399", "63056", 600.0, "2025-07-30T09:23:45.678Z")
    assert value == (
        b'{"currentTime":600,"seriesId":"1399","tmdbId":"63056",'
        b'"updatedAt":"2025-07-30T09:23:45.678Z"}'
    )


# --- one current episode, newest wins -----------------------------------------------------


def saved(
    episode: str, at: datetime, series: str = "s", finished: bool = False
) -> SeriesProgressSaved:
    return SeriesProgressSaved(
        occurred_at=at,
        actor="u",
        clerk_id="u",
        series_id=series,
        tmdb_id=episode,
        current_time=1,
        finished=finished,
    )


def deleted(at: datetime, series: str = "s") -> SeriesProgressDeleted:
    return SeriesProgressDeleted(occurred_at=at, actor="u", clerk_id="u", series_id=series)


def test_saving_episode_b_makes_it_current_and_removes_episode_a() -> None:
    stored = {("u", "s"): SeriesState(epoch_ms(NOW), "a")}
    changes = fold_series_events(stored, [saved("b", NOW + SECOND)])
    assert changes.state[("u", "s")] == SeriesState(epoch_ms(NOW + SECOND), "b")
    assert changes.removed[("u", "s")] == {"a"}


def test_newest_wins_whatever_the_order() -> None:
    events: list[SeriesEvent] = [saved("a", NOW), saved("b", NOW + SECOND), saved("c", NOW)]
    for order in (events, events[::-1], [events[1], events[0], events[2]]):
        changes = fold_series_events({}, order)
        assert changes.state[("u", "s")].episode == "b"
        assert changes.removed[("u", "s")] == {"a", "c"}
        assert changes.newest == {"u": epoch_ms(NOW + SECOND)}


def test_older_save_cannot_bring_back_a_deleted_series() -> None:
    stored = {("u", "s"): SeriesState(-epoch_ms(NOW), None)}
    changes = fold_series_events(stored, [saved("a", NOW - SECOND)])
    assert changes.state[("u", "s")] == SeriesState(-epoch_ms(NOW), None)
    assert changes.written == {}
    assert changes.removed[("u", "s")] == {"a"}


def test_delete_and_finished_save_leave_no_current_episode() -> None:
    after_delete = fold_series_events({}, [saved("a", NOW), deleted(NOW + SECOND)])
    assert after_delete.state[("u", "s")] == SeriesState(-epoch_ms(NOW + SECOND), None)
    assert after_delete.removed[("u", "s")] == {"a"}
    after_finish = fold_series_events({}, [saved("a", NOW), saved("b", NOW, finished=True)])
    assert after_finish.state[("u", "s")] == SeriesState(-epoch_ms(NOW), None)
    assert after_finish.removed[("u", "s")] == {"a", "b"}


def test_a_later_save_after_a_delete_restores_the_series() -> None:
    changes = fold_series_events({}, [deleted(NOW), saved("a", NOW + SECOND)])
    assert changes.state[("u", "s")].episode == "a"
    assert changes.removed[("u", "s")] == set()


def test_series_are_independent() -> None:
    changes = fold_series_events({}, [saved("a", NOW, "s1"), saved("b", NOW - SECOND, "s2")])
    assert changes.state[("u", "s1")].episode == "a"
    assert changes.state[("u", "s2")].episode == "b"


def test_series_id_with_a_colon_is_refused_so_keys_cannot_collide() -> None:
    """``series_resume:u:a:b:c`` would be series ``a:b`` episode ``c`` and series ``a`` episode
    ``b:c`` alike (finding M3): every key segment but the last is colon-free."""
    assert invalid_fields(body(seriesId="a:b", tmdbId="c")) == {"seriesId": SERIES_ID_MESSAGE}
    assert parse_series_save(body(seriesId="a", tmdbId="b:c")).tmdb_id == "b:c"
