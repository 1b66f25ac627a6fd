"""``medio replay``: rebuild projections from the archive, or ``--verify`` them against it.

Thin: parse options, show a progress bar on stderr, call ``projections.replay``, print the
outcome. Exit code 1 when ``--verify`` finds a difference.
"""

from __future__ import annotations

import asyncio

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from adapters.container import redis_url
from adapters.settings import SettingsError, load_settings
from projections.replay import ReplayReport, rebuild, replayable, verify
from services.container import build_container

PROGRESS_FROM_EVENTS = 50_000  # smaller archives replay too fast for a bar to help


@click.command()
@click.option(
    "--projection", "names", multiple=True, help="Only this projection (repeatable) [all]"
)
@click.option("--verify", "check", is_flag=True, help="Compare a scratch rebuild with live")
def replay(names: tuple[str, ...], check: bool) -> None:
    """Rebuild projections from the event archive and swap them in (or --verify them)."""
    try:
        settings = load_settings()
        redis_url(settings)  # no Redis to replay into: say so before the progress bar
        replayable(names)
    except (SettingsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("verify" if check else "replay", total=None, visible=False)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM_EVENTS)

        async def run() -> ReplayReport:
            container = build_container(settings, pool_size=6)  # reader + projections at once
            try:
                work = verify if check else rebuild
                return await work(container, names or None, progress)
            finally:
                await container.close()

        report = asyncio.run(run())
    _print(report, check)
    if report.differences:
        raise SystemExit(1)


def _print(report: ReplayReport, check: bool) -> None:
    done = "verified" if check else "rebuilt"
    click.echo(
        f"{done} {', '.join(report.projections) or 'nothing'} from {report.events:,} archived "
        f"events in {report.seconds:.2f} s ({report.events_per_second:,.0f} events/s)"
    )
    for name, count in report.refused.items():
        click.echo(f"{name}: {count} events refused (as when projected live)", err=True)
    for name, lines in report.differences.items():
        click.echo(f"{name} differs from its rebuild:", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
    if check and not report.differences:
        click.echo("no differences")
