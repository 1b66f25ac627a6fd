"""The ``medio`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, get_args

import click

from api.auth import ROLES, Role, create_token
from medio.embedded import EmbeddedRedis
from medio.events_cli import events
from medio.migrate import upgrade
from medio.progress_cli import progress
from medio.replay_cli import replay
from medio.server import serve
from medio.settings import Settings, SettingsError, load_settings
from workers.worker import run_worker


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Medio: event-sourced backend for a kids' video platform."""


@main.command()
def migrate() -> None:
    """Apply database migrations (Alembic upgrade to head)."""
    settings = _settings()
    upgrade(settings)
    click.echo(f"database at head: {_redacted(settings.sqlalchemy_url)}")


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
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_path)
        url = embedded.start()
        os.environ["MEDIO_REDIS_URL"] = url
        settings = _settings(host=host, port=port)
        click.echo(f"medio: embedded Redis ({embedded.kind}) at {url}")
    if settings.is_sqlite:
        os.environ.setdefault("MEDIO_DATA_DIR", str(settings.data_path))
    children: list[subprocess.Popen[bytes]] = []
    stop_requested: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: stop_requested.append(signum))
    try:
        upgrade(settings)
        click.echo(f"medio: database ready ({_redacted(settings.sqlalchemy_url)})")
        count = worker_count or settings.stream_shards + 1
        command = [sys.executable, "-m", "medio.cli"]
        children = [subprocess.Popen([*command, "worker"]) for _ in range(count)]
        children.append(
            subprocess.Popen(
                [*command, "api", "--host", settings.host, "--port", str(settings.port)]
            )
        )
        click.echo(f"medio: {count} worker(s) started")
        click.echo(
            f"medio: API on http://{settings.host}:{settings.port}  (Ctrl-C stops everything)"
        )
        click.echo("medio: get a token with: medio token create --sub <your-user-id>")
        while not stop_requested:
            if any(child.poll() is not None for child in children):
                click.echo("medio: a child process exited; stopping", err=True)
                break
            time.sleep(0.2)
    finally:
        _stop(children)
        if embedded is not None:
            embedded.stop()
        click.echo("medio: stopped")


def _serve_api(settings: Settings, workers: int | None = None) -> None:
    workers = workers or settings.api_workers
    serve("api.app:app_from_env", settings.host, settings.port, workers, settings.trusted_proxies)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Warm-stop the workers, then make sure none outlives ``medio dev``."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


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
    click.echo(create_token(_settings(), sub=sub, role=role, ttl_seconds=ttl))  # type: ignore[arg-type]


main.add_command(events)
main.add_command(replay)
main.add_command(progress)


if __name__ == "__main__":
    main()
