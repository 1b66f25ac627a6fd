"""Media rules: file types from leading bytes, the seed's 413 body, and Range parsing."""

from __future__ import annotations

import pytest

from domain.media import (
    JPEG,
    MOV,
    MP4,
    PNG,
    WEBM,
    WEBP,
    ByteRange,
    MediaType,
    Unsatisfiable,
    file_too_large,
    parse_range,
    sniff_image,
    sniff_video,
)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", MP4),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", MP4),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", MOV),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", WEBM),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"ftyp", None),
        (b"", None),
    ],
)
def test_video_type_comes_from_leading_bytes(head: bytes, expected: MediaType | None) -> None:
    assert sniff_video(head) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xdb", JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", PNG),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", WEBP),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"GIF89a", None),
        (b"<svg xmlns=", None),
    ],
)
def test_image_type_comes_from_leading_bytes(head: bytes, expected: MediaType | None) -> None:
    assert sniff_image(head) == expected


def test_413_body_is_the_seeds_for_500_mb() -> None:
    assert file_too_large("video", 500 * 1024 * 1024) == {
        "message": "File too large. Maximum size allowed is 500MB",
        "field": "video",
        "code": "FILE_TOO_LARGE",
    }


def test_413_body_names_the_thumbnail_and_its_limit() -> None:
    body = file_too_large("thumbnail", 5 * 1024 * 1024)
    assert body["message"] == "File too large. Maximum size allowed is 5MB"
    assert body["field"] == "thumbnail"


SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99, SIZE)),
        ("bytes=0-0", ByteRange(0, 0, SIZE)),
        ("bytes=500-", ByteRange(500, 999, SIZE)),
        ("bytes=999-", ByteRange(999, 999, SIZE)),
        ("bytes=990-5000", ByteRange(990, 999, SIZE)),
        ("bytes=-100", ByteRange(900, 999, SIZE)),
        ("bytes=-5000", ByteRange(0, 999, SIZE)),
        ("Bytes = 10-19", ByteRange(10, 19, SIZE)),
        ("bytes=1000-", Unsatisfiable(SIZE)),
        ("bytes=1000-1001", Unsatisfiable(SIZE)),
        ("bytes=-0", Unsatisfiable(SIZE)),
        (None, None),
        ("", None),
        ("bytes=5-2", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=1-2-3", None),
        ("items=0-10", None),
        ("bytes=0-1,5-6", None),
        ("bytes=٣-٤", None),
        ("bytes=" + "9" * 30 + "-", None),
    ],
)
def test_range_header(header: str | None, expected: ByteRange | Unsatisfiable | None) -> None:
    assert parse_range(header, SIZE) == expected


def test_any_range_of_an_empty_file_is_unsatisfiable() -> None:
    assert parse_range("bytes=0-", 0) == Unsatisfiable(0)
    assert parse_range("bytes=-5", 0) == Unsatisfiable(0)


def test_range_headers_are_what_players_expect() -> None:
    span = ByteRange(0, 1048575, 52428800)
    assert (span.length, span.content_range) == (1048576, "bytes 0-1048575/52428800")
    assert Unsatisfiable(7).content_range == "bytes */7"
