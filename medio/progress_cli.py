"""``medio progress``: resume-progress maintenance (``import`` of the Express service's keys)."""

from __future__ import annotations

import asyncio

import click

from medio.bootstrap import build_container
from medio.progress_import import ImportReport, import_express_keys
from medio.settings import SettingsError, load_settings

SHOWN_UNREADABLE = 20


@click.group()
def progress() -> None:
    """Resume progress maintenance."""


@progress.command("import")
@click.option("--dry-run", is_flag=True, help="Count what would be imported; append nothing")
def import_command(dry_run: bool) -> None:
    """Index resume keys written by the Express service (SCANs resume:*, once)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> ImportReport:
        container = build_container(settings, pool_size=1)
        try:
            return await import_express_keys(container, dry_run=dry_run)
        finally:
            await container.close()

    report = asyncio.run(run())
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"scanned {report.scanned:,} resume keys: {verb} {report.imported:,}, "
        f"{report.already_indexed:,} already indexed, {report.lapsed:,} past 30 days, "
        f"{len(report.unreadable):,} unreadable"
    )
    for key in report.unreadable[:SHOWN_UNREADABLE]:
        click.echo(f"  unreadable: {key}", err=True)
    if report.imported and not dry_run:
        click.echo("the resume projector indexes them within its lag (medio worker / medio dev)")
