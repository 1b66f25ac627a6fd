"""A ``multipart/form-data`` body as a stream of part events, in constant memory.

Litestar's own form parsing is not used for uploads: it reads the whole body before the handler
runs, spooling each file into a ``SpooledTemporaryFile``, so a size limit or a wrong file type
can only be noticed after every byte has arrived and been written once to a temporary file, and
the file is then copied again to its place. Feeding python-multipart's push parser from
``request.stream()`` lets the upload handler see each chunk as it arrives: check the leading
bytes, count, write it to its final folder, and stop reading the moment a limit is crossed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError


class PartStarted(msgspec.Struct, frozen=True):
    """A part's headers are complete; ``filename`` is set for file parts (never trusted)."""

    name: str
    filename: str | None


class PartData(msgspec.Struct, frozen=True):
    data: bytes


class PartEnded(msgspec.Struct, frozen=True):
    pass


FormEvent = PartStarted | PartData | PartEnded


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data ``Content-Type``, or 415."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(415, "Expected a multipart/form-data body")
    return boundary


def malformed() -> ApiError:
    return ApiError(400, "Malformed multipart/form-data body")


class _Collector:
    """Turns the parser's callbacks into events, one received chunk at a time."""

    def __init__(self) -> None:
        self.events: list[FormEvent] = []
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda d, s, e: self.events.append(PartData(bytes(d[s:e]))),
            "on_part_end": lambda: self.events.append(PartEnded()),
            "on_end": self._end,
        }

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if kind != b"form-data" or name is None:
            raise malformed()
        filename = options.get(b"filename")
        self.events.append(
            PartStarted(
                name.decode("utf-8", "replace"),
                filename.decode("utf-8", "replace") if filename is not None else None,
            )
        )

    def _end(self) -> None:
        self.ended = True


async def form_events(chunks: AsyncIterator[bytes], boundary: bytes) -> AsyncIterator[FormEvent]:
    """The events of a multipart body read from ``chunks``; 400 if it is malformed or cut."""
    collector = _Collector()
    try:
        parser = MultipartParser(boundary, collector.callbacks())
    except (FormParserError, ValueError):
        raise malformed() from None
    async for chunk in chunks:
        if chunk:
            try:
                parser.write(chunk)
            except FormParserError:
                raise malformed() from None
        for event in collector.events:
            yield event
        collector.events.clear()
    if not collector.ended:
        raise malformed()
