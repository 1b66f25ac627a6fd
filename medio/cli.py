"""The ``medio`` command line."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, get_args

import click

from adapters.data_dir import DataDirBusy
from adapters.settings import Settings, SettingsError, load_settings
from api.auth import ROLES, Role, create_token
from medio.cli_errors import MedioGroup
from medio.dev import StartFailed, redacted, run_dev
from medio.embedded import EmbeddedRedisError
from medio.events_cli import events
from medio.migrate import migrate_redis, upgrade
from medio.progress_cli import progress
from medio.replay_cli import replay
from medio.server import serve
from workers.worker import run_worker


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=MedioGroup)
def main() -> None:
    """Medio: event-sourced backend for a kids' video platform."""


@main.command()
def migrate() -> None:
    """Apply database migrations (Alembic upgrade to head)."""
    settings = _settings()
    upgrade(settings)
    click.echo(f"database at head: {redacted(settings.sqlalchemy_url)}")
    if settings.redis_url and not settings.redis_cluster:  # an embedded one: medio dev does it
        moved = migrate_redis(settings)
        click.echo(f"Redis keys shard-tagged: {moved} renamed")


@main.command()
@click.option("--host", default=None, help="Bind address [MEDIO_HOST]")
@click.option("--port", type=int, default=None, help="Port [MEDIO_PORT]")
@click.option("--workers", type=int, default=None, help="API processes [MEDIO_API_WORKERS]")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API only."""
    settings = _settings(host=host, port=port, api_workers=workers)
    _serve_api(settings)


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty")
def worker(burst: bool) -> None:
    """Run a projector / scheduler worker (run more to scale out)."""
    run_worker(_settings(), burst=burst)


@main.command()
@click.option("--host", default=None, help="Bind address [MEDIO_HOST]")
@click.option("--port", type=int, default=None, help="Port [MEDIO_PORT]")
@click.option("--workers", "worker_count", type=int, default=None, help="Projector workers")
def dev(host: str | None, port: int | None, worker_count: int | None) -> None:
    """Run everything on this machine: migrations, API, workers (embedded defaults)."""
    settings = _settings(host=host, port=port)
    try:
        code = run_dev(settings, worker_count)
    except (StartFailed, DataDirBusy, EmbeddedRedisError) as exc:
        raise click.ClickException(str(exc)) from None
    # Everything it started is stopped: skip the interpreter's teardown of the modules the
    # migrations loaded (1 s on an idle 2-core machine, 3 s on a busy one, of a 5 s Ctrl-C).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code)


def _serve_api(settings: Settings, workers: int | None = None) -> None:
    workers = workers or settings.api_workers
    serve("api.app:app_from_env", settings.host, settings.port, workers, settings.trusted_proxies)


@main.group()
def token() -> None:
    """Local tokens."""


@token.command("create")
@click.option("--sub", required=True, help="User id (the token's sub)")
@click.option("--role", type=click.Choice(list(ROLES)), default="parent", show_default=True)
@click.option("--ttl", type=int, default=86400, show_default=True, help="Seconds until expiry")
def token_create(sub: str, role: str, ttl: int) -> None:
    """Print a signed HS256 token for local use."""
    assert role in get_args(Role)
    settings = _settings()
    click.echo(_secret_note(settings), err=True)
    click.echo(create_token(settings, sub=sub, role=role, ttl_seconds=ttl))  # type: ignore[arg-type]


def _secret_note(settings: Settings) -> str:
    """Which secret signs the token: a token only works on a server that has the same one."""
    if settings.jwt_secret:
        return "medio: signed with MEDIO_JWT_SECRET"
    secret = settings.data_path / "jwt-secret"
    if secret.exists():
        return f"medio: signed with the development secret of data dir {settings.data_path}"
    return (
        f"medio: made a new development secret in data dir {settings.data_path}: only a "
        "medio dev on this data dir accepts the token (see MEDIO_DATA_DIR)"
    )


main.add_command(events)
main.add_command(replay)
main.add_command(progress)


if __name__ == "__main__":
    main()
