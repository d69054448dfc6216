from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from piccolo.apps.migrations.tables import Migration

from apiclub.db import bind_engine, bound_engine, create_sqlite_engine
from apiclub.db.tables import Task
from apiclub.errors import StorageError

pytestmark = pytest.mark.anyio


def test_creates_the_directory_and_enables_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "api.db"
    create_sqlite_engine(path)
    assert path.is_file()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_connections_sync_fully_and_wait_for_locks(tmp_path: Path) -> None:
    engine = create_sqlite_engine(tmp_path / "api.db", busy_timeout=7)
    bind_engine(engine)
    assert await Task.raw("PRAGMA synchronous") == [{"synchronous": 2}]  # FULL
    assert await Task.raw("PRAGMA busy_timeout") == [{"timeout": 7000}]


def test_bind_engine_points_piccolo_at_it(tmp_path: Path) -> None:
    engine = create_sqlite_engine(tmp_path / "api.db")
    bind_engine(engine)
    assert bound_engine() is engine
    assert Task._meta.db is engine
    assert Migration._meta.db is engine
    from piccolo.engine.finder import engine_finder

    assert engine_finder() is engine


def test_parent_is_a_file_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as caught:
        create_sqlite_engine(blocker / "data" / "api.db")
    message = str(caught.value)
    assert str(blocker / "data") in message
    assert "make it a writable directory" in message


def test_path_is_a_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=f"cannot use the database file {tmp_path}"):
        create_sqlite_engine(tmp_path)


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError, match="file is not a database"):
        create_sqlite_engine(path)


@pytest.mark.skipif(
    not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk"
)
def test_unwritable_file_is_a_storage_error() -> None:
    # Tests run as root, so file modes do not block writes; /dev/full refuses every write.
    with pytest.raises(StorageError, match="/dev/full"):
        create_sqlite_engine(Path("/dev/full"))
