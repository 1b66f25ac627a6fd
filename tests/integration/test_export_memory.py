"""Exports stream: the memory an export needs depends on its page size, not on the archive.

Measured with ``tracemalloc`` on small pages (and, for Parquet, row groups of one page; the
command buffers at most ``PARQUET_ROW_GROUP_ROWS`` rows of Arrow data), so 30,000 events are
already many pages and a few seconds suffice.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from history_samples import archive_of_its_own, archive_row, clear_archive, mixed_events

from adapters.container import Container
from adapters.settings import Settings
from adapters.tables import events
from services import export
from services.container import build_container
from services.export import ExportFormat, export_events

ROWS = 30_000
PAGE = 500
MAX_PEAK_BYTES = 2 * 1024 * 1024


@dataclass
class BigArchive:
    container: Container
    data_bytes: int  # the events' JSON alone, as archived


@pytest.fixture(scope="module")
def history_settings(settings: Settings) -> Iterator[Settings]:
    with archive_of_its_own(settings) as own:
        yield own


@pytest.fixture(scope="module")
async def big_archive(history_settings: Settings) -> AsyncIterator[BigArchive]:
    """30,000 archived events (sessions and saves, repeated), copied in with COPY."""
    container = build_container(history_settings)
    sample = [archive_row(1, event) for event in mixed_events(40)]
    records: list[tuple[Any, ...]] = []
    data_bytes = 0
    for position in range(1, ROWS + 1):
        row = {**sample[position % len(sample)], "position": position}
        row["stream_id"] = f"{1753689600000 + position}-0"
        records.append(tuple(row[c.name] for c in events.columns))
        data_bytes += len(row["data"])
    async with container.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.copy_records_to_table(
            events.name, records=records, columns=[c.name for c in events.columns]
        )
    del records
    yield BigArchive(container, data_bytes)
    await clear_archive(container.engine)
    await container.close()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
async def test_export_peak_memory_is_a_small_fraction_of_the_data(
    big_archive: BigArchive, tmp_path: Path, fmt: ExportFormat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PARQUET_ROW_GROUP_ROWS", PAGE)
    export.require_pyarrow()  # importing pyarrow is not the export's memory
    out = tmp_path / f"big.{fmt}"
    tracemalloc.start()
    try:
        written = await export_events(
            big_archive.container.engine, big_archive.container.keyring, fmt, out, page_size=PAGE
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == ROWS
    message = f"peak {peak / 1e6:.1f} MB exporting {big_archive.data_bytes / 1e6:.1f} MB"
    assert peak < MAX_PEAK_BYTES, message
    assert peak < big_archive.data_bytes / 4, message
