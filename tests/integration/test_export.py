"""``medio events export`` / ``import``: formats, filters, the round trip and failure modes."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import history_samples
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from history_samples import (
    T0,
    archive,
    archive_contents,
    clear_archive,
    insert_rows,
    mixed_events,
    progress_saved_v1_row,
)

from adapters.container import Container
from adapters.settings import Settings
from domain.history import ArchiveFilter
from medio.cli import main
from projections.archive_pages import archive_head, iter_archive
from services.archive_import import ImportRefused, import_events
from services.export import COLUMNS, ExportError, export_events

COUNT = 40
Medio = Callable[..., Awaitable[Result]]


# This module's own database and an empty archive around each test (history_samples).
history_settings = history_samples.history_settings
container = history_samples.container
empty_archive = history_samples.empty_archive


@pytest.fixture
def medio(history_settings: Settings) -> Medio:
    """``await medio(*args)`` runs the CLI on this module's database, as from a shell."""
    env = {"MEDIO_DATABASE_URL": history_settings.database_url}

    async def run(*args: str) -> Result:  # in a thread: the CLI runs its own event loop
        return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)

    return run


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _exported(medio: Medio, container: Container, tmp_path: Path, fmt: str) -> Path:
    """``COUNT`` mixed events archived, then exported by the CLI in ``fmt``: the file."""
    await archive(container.engine, mixed_events(COUNT))
    out = tmp_path / f"events.{fmt}"
    result = await medio("events", "export", "--format", fmt, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"exported {COUNT} events" in result.output
    return out


async def _exported_then_cleared(container: Container, out: Path, count: int) -> list[str]:
    """``count`` mixed events archived, exported to ``out`` and the archive emptied: the
    file's lines, for a test to spoil before importing them back."""
    await archive(container.engine, mixed_events(count))
    await export_events(container.engine, container.keyring, "jsonl", out)
    await clear_archive(container.engine)
    return out.read_text().splitlines()


async def test_jsonl_export_has_every_column_and_data_as_an_object(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    out = await _exported(medio, container, tmp_path, "jsonl")
    lines = _jsonl(out)
    assert [line["position"] for line in lines] == list(range(1, COUNT + 1))
    assert tuple(lines[0]) == COLUMNS
    assert lines[0]["id"] == "0-1753689600001-0"
    assert lines[0]["occurred_at"] == "2025-07-28T08:00:00.123456Z"
    assert isinstance(lines[0]["data"], dict) and lines[0]["data"]["type"] == "session.started"


async def test_csv_export_has_a_header_and_data_as_a_json_string(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    out = await _exported(medio, container, tmp_path, "csv")
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == COUNT
    assert json.loads(rows[1]["data"])["shares"] == [["2025-07-28", 60.0]]
    archived = await archive_contents(container.engine, container.keyring)
    assert [row["data"] for row in rows] == [row[7] for row in archived]


async def test_parquet_export_has_typed_columns(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    out = await _exported(medio, container, tmp_path, "parquet")
    table = pq.read_table(out)
    assert tuple(table.column_names) == COLUMNS
    assert str(table.schema.field("occurred_at").type) == "timestamp[us, tz=UTC]"
    assert table.column("position").to_pylist() == list(range(1, COUNT + 1))
    assert table.column("occurred_at")[0].as_py() == T0
    assert json.loads(table.column("data")[0].as_py())["profile_id"] == 1


async def test_filters_select_by_type_time_and_profile(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    sample = mixed_events(COUNT)
    await archive(container.engine, sample)
    out = tmp_path / "f.jsonl"
    args = ("events", "export", "-o", str(out))

    await medio(*args, "--type", "session.started", "--type", "progress.saved")
    types = [line["type"] for line in _jsonl(out)]
    assert set(types) == {"session.started", "progress.saved"}
    assert len(types) == sum(
        1 for e in sample if type(e).__name__ in ("SessionStarted", "ProgressSaved")
    )

    since, until = T0 + timedelta(minutes=30), T0 + timedelta(minutes=60)
    await medio(*args, "--since", since.isoformat(), "--until", until.isoformat())
    expected = [i + 1 for i, e in enumerate(sample) if since <= e.occurred_at < until]
    assert expected and [line["position"] for line in _jsonl(out)] == expected

    await medio(*args, "--profile", "3")
    profiles = {line["data"]["profile_id"] for line in _jsonl(out)}  # type: ignore[index]
    assert profiles == {3}


async def test_bad_filter_is_a_usage_error_and_writes_nothing(medio: Medio, tmp_path: Path) -> None:
    out = tmp_path / "never.jsonl"
    result = await medio("events", "export", "--since", "soon", "-o", str(out))
    assert result.exit_code == 2
    assert "--since" in result.output
    assert not out.exists()


async def test_export_then_import_into_an_empty_archive_restores_it_byte_for_byte(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    await archive(container.engine, mixed_events(COUNT))
    async with container.engine.begin() as conn:
        await insert_rows(conn, [progress_saved_v1_row(COUNT + 5, T0 + timedelta(days=2))])
    original = await archive_contents(container.engine, container.keyring)
    out = tmp_path / "all.jsonl"
    assert (await medio("events", "export", "-o", str(out))).exit_code == 0

    await clear_archive(container.engine)
    result = await medio("events", "import", str(out))
    assert result.exit_code == 0, result.output
    assert f"imported {COUNT + 1} events" in result.output
    assert await archive_contents(container.engine, container.keyring) == original


async def test_import_refuses_a_non_empty_archive(
    medio: Medio, container: Container, tmp_path: Path
) -> None:
    await archive(container.engine, mixed_events(3))
    out = tmp_path / "three.jsonl"
    await export_events(container.engine, container.keyring, "jsonl", out)
    result = await medio("events", "import", str(out))
    assert result.exit_code == 1
    assert "not empty" in result.output


async def test_a_bad_line_aborts_the_whole_import(container: Container, tmp_path: Path) -> None:
    out = tmp_path / "broken.jsonl"
    lines = await _exported_then_cleared(container, out, 10)
    lines[7] = lines[7].replace('"position":8', '"position":"eight"')
    out.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportRefused, match="line 8"):
        await import_events(container.engine, container.keyring, out)
    assert await archive_contents(container.engine, container.keyring) == []


async def test_out_of_order_positions_are_refused(container: Container, tmp_path: Path) -> None:
    out = tmp_path / "ordered.jsonl"
    lines = await _exported_then_cleared(container, out, 4)
    out.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(ImportRefused, match="positions must increase"):
        await import_events(container.engine, container.keyring, out)


async def test_parquet_without_pyarrow_says_how_to_install_it(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "x.parquet"
    with pytest.raises(ExportError, match=r"medio\[parquet\]"):
        await export_events(container.engine, container.keyring, "parquet", out)
    assert not out.exists()


async def test_a_failed_export_leaves_no_file(container: Container, tmp_path: Path) -> None:
    await archive(container.engine, mixed_events(30))
    out = tmp_path / "half.jsonl"

    def explode(done: int, total: int, written: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        await export_events(
            container.engine, container.keyring, "jsonl", out, on_progress=explode, page_size=10
        )
    assert list(tmp_path.iterdir()) == []


async def test_export_pages_stop_at_the_head_read_when_it_started(
    container: Container,
) -> None:
    await archive(container.engine, mixed_events(20))
    async with container.engine.connect() as conn:
        _, head = await archive_head(conn)
    positions: list[int] = []
    async for page in iter_archive(
        container.engine, container.keyring, ArchiveFilter(), head, page_size=5
    ):
        if not positions:  # events archived mid-export belong to the next export
            await archive(container.engine, mixed_events(5, start=T0 + timedelta(days=3)), 21)
        positions.extend(event.position for event in page)
    assert positions == list(range(1, 21))
