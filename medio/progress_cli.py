"""``medio progress``: resume-progress maintenance (``import`` of the Express service's title
keys and of the origin service's series keys)."""

from __future__ import annotations

import asyncio

import click

from adapters.settings import SettingsError, load_settings
from services.container import build_container
from services.progress_import import ImportReport, import_express_keys
from services.series_import import import_series_keys

SHOWN_UNREADABLE = 20


@click.group()
def progress() -> None:
    """Resume progress maintenance."""


@progress.command("import")
@click.option("--dry-run", is_flag=True, help="Count what would be imported; append nothing")
def import_command(dry_run: bool) -> None:
    """Index resume keys written by the Express service (SCANs resume:* and series_resume:*,
    once)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> tuple[ImportReport, ImportReport]:
        container = build_container(settings, pool_size=1)
        try:
            titles = await import_express_keys(container, dry_run=dry_run)
            return titles, await import_series_keys(container, dry_run=dry_run)
        finally:
            await container.close()

    titles, series = asyncio.run(run())
    _echo(titles, "resume", dry_run)
    _echo(series, "series_resume", dry_run)
    if (titles.imported or series.imported) and not dry_run:
        click.echo("the resume projectors index them within their lag (medio worker / medio dev)")


def _echo(report: ImportReport, kind: str, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"scanned {report.scanned:,} {kind} keys: {verb} {report.imported:,}, "
        f"{report.already_indexed:,} already indexed, {report.lapsed:,} past 30 days, "
        f"{len(report.unreadable):,} unreadable"
    )
    for key in report.unreadable[:SHOWN_UNREADABLE]:
        click.echo(f"  unreadable: {key}", err=True)
