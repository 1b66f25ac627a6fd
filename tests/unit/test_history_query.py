"""How the feed and the export read an analyst's question (``domain.history``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.history import (
    DEFAULT_FEED_LIMIT,
    ArchiveFilter,
    parse_feed_query,
    parse_filter,
    parse_instant,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-07-30T09:23:45.678Z", datetime(2025, 7, 30, 9, 23, 45, 678000, tzinfo=UTC)),
        ("2025-07-30T11:23:45+02:00", datetime(2025, 7, 30, 9, 23, 45, tzinfo=UTC)),
        ("2025-07-30T09:23:45", datetime(2025, 7, 30, 9, 23, 45, tzinfo=UTC)),
        ("2025-07-30", datetime(2025, 7, 30, tzinfo=UTC)),
    ],
)
def test_instants_are_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2025-02-30", "2025-07-30T25:00:00Z"])
def test_unreadable_instants_are_none(text: str) -> None:
    assert parse_instant(text) is None


def test_no_parameters_mean_the_first_page_of_everything() -> None:
    query, problems = parse_feed_query(None, None, [], None, None)
    assert problems == []
    assert query is not None
    assert (query.after, query.limit, query.wanted) == (0, DEFAULT_FEED_LIMIT, ArchiveFilter())


def test_types_may_repeat_or_be_comma_separated_and_are_deduplicated() -> None:
    wanted, _ = parse_filter(["session.ended,progress.saved", "session.ended"], None, None, None)
    assert wanted is not None
    assert wanted.types == ("session.ended", "progress.saved")


def test_every_bad_parameter_is_reported_at_once() -> None:
    query, problems = parse_feed_query("-1", "0", ["nope"], "soon", "later")
    assert query is None
    assert [p.path for p in problems] == ["after", "limit", "type", "since", "until"]


@pytest.mark.parametrize(("text", "expected"), [("42", 42), ("0", None), ("-3", None), ("x", None)])
def test_the_export_profile_filter_takes_a_positive_id(text: str, expected: int | None) -> None:
    wanted, problems = parse_filter([], None, None, text)
    assert (wanted.profile_id if wanted else None) == expected
    assert [p.path for p in problems] == ([] if expected else ["profile_id"])


def test_an_empty_time_window_is_refused() -> None:
    wanted, problems = parse_filter([], "2025-07-02", "2025-07-02T00:00:00Z", None)
    assert wanted is None
    assert [p.path for p in problems] == ["until"]
