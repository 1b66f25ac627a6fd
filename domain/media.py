"""Rules for uploaded media: what a file is (by its leading bytes) and which bytes a player wants.

A client's ``Content-Type`` label and file name are never trusted: the kind of a file is read
from its magic numbers, and a ``Range`` header is reduced to one inclusive byte span (RFC 9110
§14) or a verdict that it cannot be satisfied.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SNIFF_BYTES = 16  # enough for every signature below

MediaKind = Literal["video", "thumbnail"]


class MediaType(msgspec.Struct, frozen=True):
    """A recognised file type: its MIME type and the extension it is stored under."""

    mime_type: str
    extension: str


MP4 = MediaType("video/mp4", "mp4")
MOV = MediaType("video/quicktime", "mov")
WEBM = MediaType("video/webm", "webm")
JPEG = MediaType("image/jpeg", "jpg")
PNG = MediaType("image/png", "png")
WEBP = MediaType("image/webp", "webp")


def sniff_video(head: bytes) -> MediaType | None:
    """MP4/MOV (an ISO base media ``ftyp`` box first) or WebM (an EBML header); else ``None``."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return MOV if head[8:12] == b"qt  " else MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM
    return None


def sniff_image(head: bytes) -> MediaType | None:
    """JPEG, PNG or WebP; else ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def stored_image_type(extension: str) -> MediaType | None:
    """The type of a stored thumbnail from the extension Medio gave it (after sniffing)."""
    return next((t for t in (JPEG, PNG, WEBP) if t.extension == extension), None)


def sniff(kind: MediaKind, head: bytes) -> MediaType | None:
    """The type of an upload of ``kind`` from its first bytes."""
    return sniff_video(head) if kind == "video" else sniff_image(head)


def size_label(limit_bytes: int) -> str:
    """``500MB`` for the seed's 413 message (whole megabytes when exact, else bytes)."""
    mib = 1024 * 1024
    return f"{limit_bytes // mib}MB" if limit_bytes % mib == 0 else f"{limit_bytes} bytes"


def file_too_large(field: MediaKind, limit_bytes: int) -> dict[str, str]:
    """The seed's fixed 413 body for ``field``."""
    return {
        "message": f"File too large. Maximum size allowed is {size_label(limit_bytes)}",
        "field": field,
        "code": "FILE_TOO_LARGE",
    }


# Ranges --------------------------------------------------------------------------------------


class ByteRange(msgspec.Struct, frozen=True):
    """Bytes ``start`` to ``end`` inclusive, within a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class Unsatisfiable(msgspec.Struct, frozen=True):
    """A well-formed range that selects nothing in a file of ``size`` bytes (416)."""

    size: int

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The span a ``Range`` header asks for; ``None`` means send the whole file (200).

    Per RFC 9110 a header that is absent, malformed, in another unit or asks for several
    ranges may be ignored; a single well-formed range past the end is unsatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not _digits(first, allow_empty=True) or not _digits(last, allow_empty=True):
        return None
    if not first:  # suffix: the last n bytes
        if not last:
            return None
        wanted = int(last)
        if wanted == 0 or size == 0:
            return Unsatisfiable(size)
        return ByteRange(max(0, size - wanted), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return Unsatisfiable(size)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


def _digits(text: str, allow_empty: bool) -> bool:
    return (allow_empty and text == "") or (text.isascii() and text.isdigit() and len(text) <= 19)
