"""``medio events export`` / ``medio events import``: the archive to and from files.

Thin: parse options, show a progress bar on stderr, call ``services.export.export_events`` or
``services.archive_import.import_events``. Only the database is needed (no Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db import create_engine
from adapters.keyring import Keyring, keyring_for
from adapters.settings import SettingsError, load_settings
from domain.history import parse_filter
from medio.migrate import is_migrated
from services.archive_import import ImportRefused, import_events
from services.export import FORMATS, ExportError, ExportFormat, export_events

T = TypeVar("T")


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _with_engine(work: Callable[[AsyncEngine, Keyring], Awaitable[T]]) -> T:
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> T:
        engine = create_engine(settings, pool_size=1)
        try:
            if not await is_migrated(engine):
                raise click.ClickException(
                    "the database has no Medio tables yet: run `medio migrate` first"
                )
            return await work(engine, keyring_for(settings))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@click.group()
def events() -> None:
    """The event archive: export it for analysis, import an export into a fresh archive."""


@events.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--since", help="Events at or after this ISO-8601 instant (or date)")
@click.option("--until", help="Events before this ISO-8601 instant (or date)")
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable)")
@click.option("--profile", help="Only events of this child profile (session events)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export_command(
    fmt: ExportFormat,
    since: str | None,
    until: str | None,
    types: tuple[str, ...],
    profile: str | None,
    output: Path,
) -> None:
    """Write archived events, in archive order, to a JSON Lines, CSV or Parquet file."""
    wanted, problems = parse_filter(types, since, until, profile)
    if wanted is None:
        names = {"profile_id": "--profile"}
        raise click.UsageError(
            "; ".join(f"{names.get(p.path, '--' + p.path)}: {p.msg}" for p in problems)
        )

    async def work(engine: AsyncEngine, keyring: Keyring) -> int:
        with _progress_bar() as bar:
            task = bar.add_task(f"export {fmt}", total=None, note="")

            def advance(done: int, total: int, written: int) -> None:
                done, total = (done, total) if total else (1, 1)  # an empty archive is done
                bar.update(task, completed=done, total=total, note=f"{written:,} events")

            return await export_events(engine, keyring, fmt, output, wanted, advance)

    try:
        written = _with_engine(work)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exported {written:,} events to {output}", err=True)


@events.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(source: Path) -> None:
    """Load a JSON Lines export into an empty archive (then run `medio replay`)."""

    async def work(engine: AsyncEngine, keyring: Keyring) -> int:
        with _progress_bar() as bar:
            task = bar.add_task("import", total=None, note="")

            def advance(done: int, total: int) -> None:
                done, total = (done, total) if total else (1, 1)  # an empty file is done
                bar.update(task, completed=done, total=total)

            return await import_events(engine, keyring, source, advance)

    try:
        count = _with_engine(work)
    except ImportRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {count:,} events from {source}", err=True)
