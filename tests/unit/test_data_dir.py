"""The data dir: found from any subfolder, held by one ``medio dev``, bound to one database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.data_dir import (
    DataDirBusy,
    EmbeddedRecord,
    check_pairing,
    database_identity,
    dev_lock,
    embedded_redis_url,
    running_dev,
    write_record,
)
from adapters.settings import Settings, SettingsError, find_data_dir, load_settings


def test_the_data_dir_is_found_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "jwt-secret").write_text("s" * 48)
    deeper = tmp_path / "src" / "deeper"
    deeper.mkdir(parents=True)
    assert find_data_dir(deeper) == tmp_path / "var"


def test_without_medio_data_above_the_data_dir_is_var_here(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()  # an unrelated var/ holds no Medio data
    assert find_data_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "var"


def test_medio_data_dir_wins_over_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIO_DATA_DIR", str(tmp_path / "mine"))
    assert load_settings(env_file=None).data_path == tmp_path / "mine"


def test_a_second_holder_of_the_data_dir_is_refused_with_the_first_ones_pid(
    tmp_path: Path,
) -> None:
    with dev_lock(tmp_path, embedded_redis=True):
        assert running_dev(tmp_path) is not None
        busy = pytest.raises(DataDirBusy, match=rf"another medio dev \(pid {os.getpid()}\)")
        with busy, dev_lock(tmp_path, embedded_redis=True):
            pass
    assert running_dev(tmp_path) is None  # released with its holder


def _sqlite(data_dir: Path) -> Settings:
    return Settings(data_dir=str(data_dir))


def test_the_embedded_redis_refuses_another_databases_data(tmp_path: Path) -> None:
    mine = _sqlite(tmp_path)
    record = EmbeddedRecord(port=6400, database=database_identity(mine))
    check_pairing(record, mine)
    other = Settings(data_dir=str(tmp_path), database_url="postgresql://u:pw@db:5432/fresh")
    with pytest.raises(SettingsError, match=r"holds the data of sqlite:///.*not of postgresql"):
        check_pairing(record, other)


def test_database_identity_leaves_out_credentials() -> None:
    settings = Settings(database_url="postgresql://medio:secret@db.local/medio")
    assert database_identity(settings) == "postgresql://db.local:5432/medio"


def test_other_commands_find_the_running_dev_s_redis(tmp_path: Path) -> None:
    settings = _sqlite(tmp_path)
    write_record(tmp_path, EmbeddedRecord(port=6411, database=database_identity(settings)))
    with pytest.raises(SettingsError, match="no medio dev with an embedded Redis is running"):
        embedded_redis_url(settings)
    with dev_lock(tmp_path, embedded_redis=True):
        assert embedded_redis_url(settings) == "redis://127.0.0.1:6411/0"


def test_a_bad_database_url_names_the_variable_without_its_password() -> None:
    with pytest.raises(SettingsError, match="MEDIO_DATABASE_URL") as raised:
        load_settings(env_file=None, database_url="mysql://root:hunter2@db/medio")
    assert "hunter2" not in str(raised.value)
