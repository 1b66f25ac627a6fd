"""``medio events export``: the archive to JSON Lines, CSV or Parquet, in constant memory.

The archive is read in keyset pages (``projections.archive_pages.iter_archive``) and each page is
written out before the next is fetched, so memory depends on the page size, never on how many
events there are. The file is written next to its destination and renamed into place at the
end: an interrupted export leaves no half file behind.

Every format has the same columns. ``data`` is the event body exactly as appended (at its
stored ``version``; no upcasting; opened if the archive keeps it sealed), so an export can be
imported back byte for byte. An erased event keeps its row with ``data`` null (empty in CSV)
and ``erased`` true.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Literal, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.keyring import Keyring
from domain.history import ArchiveFilter
from projections.archive_pages import EXPORT_PAGE_SIZE, ArchivedEvent, archive_head, iter_archive

ExportFormat = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet")
COLUMNS = (
    "position",
    "id",
    "shard",
    "stream_id",
    "type",
    "version",
    "occurred_at",
    "actor",
    "data",
    "erased",
)
PARQUET_ROW_GROUP_ROWS = 50_000


def _row(e: ArchivedEvent, data: Any) -> tuple[Any, ...]:
    """One event's values in ``COLUMNS`` order, ``data`` as the format at hand writes it."""
    return (
        e.position,
        e.id,
        e.shard,
        e.stream_id,
        e.type,
        e.version,
        iso_us(e.occurred_at),
        e.actor,
        data,
        e.erased,
    )


Progress = Callable[[int, int, int], None]  # (positions done, positions in total, events written)


class ExportError(RuntimeError):
    """The export cannot run (e.g. Parquet without pyarrow); the message says what to do."""


def iso_us(moment: datetime) -> str:
    """Full-precision UTC instant (``...45.678123Z``), so re-import loses nothing."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


class ExportLine(msgspec.Struct, frozen=True):
    """One JSON Lines record; ``data`` is embedded as the archived JSON object, unparsed."""

    position: int
    id: str
    shard: int
    stream_id: str
    type: str
    version: int
    occurred_at: str
    actor: str
    data: msgspec.Raw
    erased: bool


_NULL = msgspec.Raw(b"null")


class PageWriter(Protocol):
    def write(self, page: list[ArchivedEvent]) -> None: ...
    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = path.open("wb")
        self._encoder = msgspec.json.Encoder()

    def write(self, page: list[ArchivedEvent]) -> None:
        lines = [
            ExportLine(*_row(e, _NULL if e.data is None else msgspec.Raw(e.data.encode())))
            for e in page
        ]
        self._file.write(self._encoder.encode_lines(lines))

    def close(self) -> None:
        self._file.close()


class CsvWriter:
    """RFC 4180 CSV with a header row; ``data`` is the event JSON as a quoted string."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)

    def write(self, page: list[ArchivedEvent]) -> None:
        self._csv.writerows(_row(e, e.data or "") for e in page)

    def close(self) -> None:
        self._file.close()


def require_pyarrow() -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet)``, or a clear way to get them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ExportError(
            "Parquet export needs pyarrow, the optional 'parquet' extra: "
            "pip install 'medio[parquet]' (or pip install pyarrow)"
        ) from None
    return pyarrow, pyarrow.parquet


class ParquetWriter:
    """Typed columns (``occurred_at`` is a UTC timestamp), zstd, row groups of 50,000 rows."""

    def __init__(self, path: Path) -> None:
        self._pa, parquet = require_pyarrow()
        pa = self._pa
        self._schema = pa.schema(
            [
                ("position", pa.int64()),
                ("id", pa.string()),
                ("shard", pa.int16()),
                ("stream_id", pa.string()),
                ("type", pa.string()),
                ("version", pa.int16()),
                ("occurred_at", pa.timestamp("us", tz="UTC")),
                ("actor", pa.string()),
                ("data", pa.string()),
                ("erased", pa.bool_()),
            ]
        )
        self._writer = parquet.ParquetWriter(str(path), self._schema, compression="zstd")
        self._pending: list[Any] = []
        self._pending_rows = 0

    def write(self, page: list[ArchivedEvent]) -> None:
        columns = {
            "position": [e.position for e in page],
            "id": [e.id for e in page],
            "shard": [e.shard for e in page],
            "stream_id": [e.stream_id for e in page],
            "type": [e.type for e in page],
            "version": [e.version for e in page],
            "occurred_at": [e.occurred_at for e in page],
            "actor": [e.actor for e in page],
            "data": [e.data for e in page],
            "erased": [e.erased for e in page],
        }
        self._pending.append(self._pa.RecordBatch.from_pydict(columns, schema=self._schema))
        self._pending_rows += len(page)
        if self._pending_rows >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = self._pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def open_writer(fmt: ExportFormat, path: Path) -> PageWriter:
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "csv":
        return CsvWriter(path)
    return ParquetWriter(path)


async def export_events(
    engine: AsyncEngine,
    keyring: Keyring,
    fmt: ExportFormat,
    destination: Path,
    wanted: ArchiveFilter | None = None,
    on_progress: Progress | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
) -> int:
    """Write every matching archived event, in archive order, to ``destination``.

    The export covers the archive as it was when it started (up to the highest position then),
    so its contents and the progress total are fixed even while events keep arriving.
    Returns the number of events written.
    """
    if fmt == "parquet":
        require_pyarrow()
    async with engine.connect() as conn:
        first, head = await archive_head(conn)
    total = head - first + 1 if head else 0
    partial = destination.with_name(destination.name + ".partial")
    writer = open_writer(fmt, partial)
    written = 0
    try:
        async for page in iter_archive(engine, keyring, wanted or ArchiveFilter(), head, page_size):
            writer.write(page)
            written += len(page)
            if on_progress:
                on_progress(page[-1].position - first + 1, total, written)
        writer.close()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, destination)
    if on_progress:
        on_progress(total, total, written)
    return written
