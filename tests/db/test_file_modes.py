"""The data directory is 0700 and the database files 0600 whatever the umask (issue 14)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiclub.db import create_sqlite_engine
from tests.processes import run_apiclub


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: files 0644, directories 0755
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_apiclub_migrate_makes_the_data_dir_0700_and_the_database_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_apiclub("migrate", data_dir=data)
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    database = data / "api.db"
    assert mode(database) == 0o600
    for companion in (data / "api.db-wal", data / "api.db-shm"):
        if companion.exists():
            assert mode(companion) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_the_engine_makes_new_directories_0700_and_its_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "api.db"
    engine = create_sqlite_engine(path)
    try:
        assert mode(tmp_path / "a") == mode(path.parent) == 0o700
        assert mode(path) == 0o600
        wal = path.with_name("api.db-wal")
        assert wal.exists() and mode(wal) == 0o600  # WAL mode: SQLite copies the file's mode
    finally:
        engine.close()


@pytest.mark.usefixtures("open_umask")
def test_a_database_left_0644_by_an_older_version_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    create_sqlite_engine(path).close()
    path.chmod(0o644)
    create_sqlite_engine(path).close()
    assert mode(path) == 0o600
