from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from apiclub.db import create_sqlite_engine, default_lock_path, migrate
from apiclub.errors import MigrationError, StorageError
from tests.db.helpers import broken_migrations
from tests.db.migrations import MIGRATION_IDS, RECORDED

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

MIGRATE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from apiclub.db import create_sqlite_engine, migrate
print(asyncio.run(migrate(create_sqlite_engine(Path(sys.argv[1])))))
"""


def recorded(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT name, app_name FROM migration ORDER BY id").fetchall()


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def piccolo_env(path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PICCOLO_CONF"}
    return {**env, "DB_FILE_PATH": str(path)}


def run_piccolo_forwards(path: Path) -> subprocess.CompletedProcess[str]:
    piccolo = Path(sys.executable).with_name("piccolo")
    return subprocess.run(
        [str(piccolo), "migrations", "forwards", "all"],
        cwd=REPO,
        env=piccolo_env(path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_applies_pending_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    engine = create_sqlite_engine(path)
    assert await migrate(engine, default_lock_path(path)) == MIGRATION_IDS
    assert await migrate(engine, default_lock_path(path)) == []
    assert recorded(path) == RECORDED
    assert {"task", "migration"} <= tables(path)
    assert default_lock_path(path) == tmp_path / "api.db.migrate.lock"
    assert default_lock_path(path).exists()


async def test_piccolo_cli_agrees_with_migrate(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    await migrate(create_sqlite_engine(path))
    result = run_piccolo_forwards(path)
    assert result.returncode == 0, result.stderr
    assert "No migrations need to be run" in result.stdout
    assert recorded(path) == RECORDED


async def test_migrate_agrees_with_piccolo_cli(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    result = run_piccolo_forwards(path)
    assert result.returncode == 0, result.stderr
    assert await migrate(create_sqlite_engine(path)) == []
    assert recorded(path) == RECORDED


def test_two_processes_at_once_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    lock_path = default_lock_path(path)
    with lock_path.open("w") as lock:
        # Hold the lock until both processes wait on it, then let them race.
        fcntl.flock(lock, fcntl.LOCK_EX)
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_SCRIPT, str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        time.sleep(1.5)
        early = [process.poll() for process in processes]
        fcntl.flock(lock, fcntl.LOCK_UN)
    outputs = [process.communicate(timeout=60) for process in processes]
    assert early == [None, None], outputs
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sorted(stdout.strip() for stdout, _ in outputs) == [str(MIGRATION_IDS), "[]"]
    assert recorded(path) == RECORDED


async def test_failed_migration_names_it_and_rolls_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_id = broken_migrations(tmp_path / "migrations", monkeypatch)
    path = tmp_path / "api.db"
    with pytest.raises(MigrationError) as caught:
        await migrate(create_sqlite_engine(path))
    assert str(caught.value) == (
        f"migration {broken_id} of apiclub failed: table task already exists; "
        "fix the migration or restore the database"
    )
    # The good migrations stay applied; the broken one left nothing behind.
    assert recorded(path) == RECORDED
    assert "side_effect" not in tables(path)


async def test_lock_must_not_be_the_database(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    with pytest.raises(ValueError, match="must not be the database file"):
        await migrate(create_sqlite_engine(path), path)


async def test_unwritable_lock_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=f"cannot create the migration lock {blocker}"):
        await migrate(create_sqlite_engine(tmp_path / "api.db"), blocker / "x.lock")


async def test_unloadable_migration_is_a_migration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "migrations"
    broken_migrations(folder, monkeypatch)
    (folder / f"syntax_{uuid.uuid4().hex}.py").write_text("ID = 'oops\n")
    with pytest.raises(
        MigrationError, match=f"cannot load the migrations of apiclub from {folder}"
    ):
        await migrate(create_sqlite_engine(tmp_path / "api.db"))
