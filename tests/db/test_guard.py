from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from apiclub.db import DatabaseFileError, bind_engine, create_sqlite_engine
from apiclub.db.sqlite.guard import DatabaseGuard
from apiclub.db.tables import Task

pytestmark = pytest.mark.anyio


def new_database(path: Path, rows: int = 2) -> Path:
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(rows)])
        db.commit()
    return path


def test_the_file_opened_at_start_passes(tmp_path: Path) -> None:
    guard = DatabaseGuard(new_database(tmp_path / "api.db"))
    guard.check()
    guard.check()
    guard.close()


def test_a_deleted_file_fails_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = new_database(tmp_path / "api.db", rows=3)
    guard = DatabaseGuard(path)
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="apiclub.db"):
        for _ in range(3):
            with pytest.raises(DatabaseFileError, match="was deleted while serving"):
                guard.check()
    assert len(caplog.records) == 1
    assert f"remove {path}-wal and {path}-shm" in caplog.text
    (saved,) = tmp_path.glob("api.db.recovered-*")
    with closing(sqlite3.connect(saved)) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (3,)
    guard.close()


def test_a_replaced_file_fails_and_the_same_file_back_passes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = new_database(tmp_path / "api.db")
    guard = DatabaseGuard(path)
    path.rename(tmp_path / "aside.db")
    new_database(path)
    with pytest.raises(DatabaseFileError, match="was replaced while serving"):
        guard.check()
    path.unlink()
    (tmp_path / "aside.db").rename(path)
    with caplog.at_level(logging.WARNING, logger="apiclub.db"):
        guard.check()
    assert "is back: serving from it again" in caplog.text
    guard.close()


async def test_engine_connections_never_create_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    bind_engine(create_sqlite_engine(path))
    assert await Task.raw("SELECT 1 AS one") == [{"one": 1}]
    path.unlink()
    with pytest.raises(DatabaseFileError):
        await Task.raw("SELECT 1 AS one")
    assert not path.exists()
