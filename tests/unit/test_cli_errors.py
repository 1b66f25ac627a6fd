"""A configuration error of any ``medio`` command is one line and a non-zero exit."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner, Result

from medio.cli import main


def _medio(tmp_path: Path, *args: str, **env: str) -> Result:
    """``medio`` with no ``MEDIO_*`` but ``env``, in ``tmp_path``."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MEDIO_")}
    cleared.update({f"MEDIO_{k.upper()}": v for k, v in env.items()})
    here = Path.cwd()
    os.chdir(tmp_path)  # no data dir of the repository is found from here
    try:
        return CliRunner(env=cleared).invoke(main, list(args))
    finally:
        os.chdir(here)


def _one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def test_replay_without_a_running_medio_dev_says_so(tmp_path: Path) -> None:
    error = _one_line(_medio(tmp_path, "replay", "--verify", data_dir=str(tmp_path / "var")))
    assert "no medio dev with an embedded Redis is running on data dir" in error


def test_a_bad_database_url_is_one_line(tmp_path: Path) -> None:
    error = _one_line(_medio(tmp_path, "migrate", database_url="not a url"))
    assert "MEDIO_DATABASE_URL must look like postgresql://" in error


def test_events_import_into_an_unmigrated_database_says_migrate_first(tmp_path: Path) -> None:
    export = tmp_path / "events.jsonl"
    export.write_text("")
    database = f"sqlite:///{tmp_path / 'empty.db'}"
    error = _one_line(_medio(tmp_path, "events", "import", str(export), database_url=database))
    assert "run `medio migrate` first" in error


def test_an_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    error = _one_line(
        _medio(
            tmp_path,
            "progress",
            "import",
            "--dry-run",
            redis_url="redis://127.0.0.1:1/0",
            data_dir=str(tmp_path / "var"),
        )
    )
    assert "Redis is unreachable" in error


def test_token_create_says_which_data_dir_signed_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    made = _medio(tmp_path, "token", "create", "--sub", "u1", data_dir=str(data_dir))
    assert made.exit_code == 0, made.output
    assert f"made a new development secret in data dir {data_dir}" in made.stderr
    again = _medio(tmp_path, "token", "create", "--sub", "u1", data_dir=str(data_dir))
    assert f"signed with the development secret of data dir {data_dir}" in again.stderr
    assert again.stdout.count(".") == 2  # the token alone on stdout
