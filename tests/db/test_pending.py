"""The start-up fast path: pending migrations told without Piccolo's migration machinery."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import pytest

from apiclub.db import Postgres, bind_engine, close_database, create_sqlite_engine, migrate
from apiclub.db.pending import APP_NAME, migration_ids, migrations_folder, pending_migrations
from apiclub.db.piccolo_app import APP_CONFIG
from apiclub.errors import MigrationError
from tests.db.helpers import BROKEN_ID, broken_migrations
from tests.db.migrations import MIGRATION_IDS
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
MACHINERY = "piccolo.apps.migrations.commands.base"

# A fresh process opens the database as `apiclub serve` does and says what it imported.
OPEN_SCRIPT = f"""
import asyncio, json, sys
from apiclub.db import close_database, open_database
from apiclub.settings import Settings

async def main():
    settings = Settings.from_env(dict(a.split("=", 1) for a in sys.argv[1:]))
    engine = await open_database(settings)
    await close_database(engine)

asyncio.run(main())
print(json.dumps({{"machinery": "{MACHINERY}" in sys.modules}}))
"""


def open_in_new_process(*env: str) -> bool:
    """Whether opening the database imported Piccolo's migration machinery."""
    # The child's stderr reaches pytest's captured output if it fails.
    out = subprocess.check_output(
        [sys.executable, "-c", OPEN_SCRIPT, *env], cwd=REPO, text=True, timeout=60
    )
    machinery: bool = json.loads(out)["machinery"]
    return machinery


def forget_sqlite(path: Path, migration_id: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM migration WHERE name = ?", (migration_id,))


@asynccontextmanager
async def started(url: str) -> AsyncIterator[Postgres]:
    engine = Postgres(url)
    await engine.start()
    try:
        yield engine
    finally:
        await close_database(engine)


def test_the_ids_are_read_from_the_files_without_importing_them() -> None:
    folder = migrations_folder()
    assert folder is not None
    assert migration_ids(folder) == MIGRATION_IDS


def test_a_file_without_a_literal_id_leaves_it_to_piccolo(tmp_path: Path) -> None:
    (tmp_path / "apiclub_a.py").write_text('ID = "2026-01-01T00:00:00:000000"\n')
    assert migration_ids(tmp_path) == ["2026-01-01T00:00:00:000000"]
    (tmp_path / "apiclub_b.py").write_text('ID = "2026-" + "02"\n')
    assert migration_ids(tmp_path) is None


def test_a_broken_file_leaves_it_to_piccolo(tmp_path: Path) -> None:
    (tmp_path / "apiclub_a.py").write_text("ID = 'oops\n")
    assert migration_ids(tmp_path) is None
    assert migration_ids(tmp_path / "missing") is None


def test_the_fast_path_reads_the_app_piccolo_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert APP_CONFIG.app_name == APP_NAME
    assert migrations_folder() == Path(APP_CONFIG.resolved_migrations_folder_path)
    # Before Piccolo's app config is loaded, find_spec must name the same folder.
    monkeypatch.delitem(sys.modules, "apiclub.db.piccolo_app")
    assert migrations_folder() == Path(APP_CONFIG.resolved_migrations_folder_path)


async def test_sqlite_all_applied_is_nothing_pending(tmp_path: Path) -> None:
    await migrate(create_sqlite_engine(tmp_path / "api.db"))
    assert await pending_migrations() == []


async def test_sqlite_a_missing_row_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    await migrate(create_sqlite_engine(path))
    forget_sqlite(path, MIGRATION_IDS[-1])
    assert await pending_migrations() == [MIGRATION_IDS[-1]]


async def test_sqlite_no_migration_table_is_unsure(tmp_path: Path) -> None:
    bind_engine(create_sqlite_engine(tmp_path / "api.db"))
    assert await pending_migrations() is None


async def test_postgres_all_applied_is_nothing_pending(postgres_url: str) -> None:
    async with started(postgres_url) as engine:
        assert await migrate(engine) == MIGRATION_IDS
        assert await pending_migrations() == []


async def test_postgres_a_missing_row_is_pending(postgres_url: str) -> None:
    async with started(postgres_url) as engine:
        await migrate(engine)
        connection = await asyncpg.connect(postgres_url, timeout=10)
        try:
            await connection.execute("DELETE FROM migration WHERE name = $1", MIGRATION_IDS[-1])
        finally:
            await connection.close()
        assert await pending_migrations() == [MIGRATION_IDS[-1]]


async def test_postgres_no_migration_table_is_unsure(postgres_url: str) -> None:
    async with started(postgres_url) as engine:
        bind_engine(engine)
        assert await pending_migrations() is None


def test_sqlite_start_on_a_migrated_file_skips_the_machinery(tmp_path: Path) -> None:
    db = f"DB_FILE_PATH={tmp_path / 'api.db'}"
    assert open_in_new_process(db)  # first start: migrations applied, machinery loaded
    assert not open_in_new_process(db)  # every later start: one query


def test_postgres_start_on_a_migrated_database_skips_the_machinery(postgres_url: str) -> None:
    url = f"APICLUB_DATABASE_URL={postgres_url}"
    assert open_in_new_process(url)
    assert not open_in_new_process(url)


async def test_a_new_migration_after_the_fast_path_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "api.db"
    assert await migrate(create_sqlite_engine(path)) == MIGRATION_IDS
    broken_migrations(tmp_path / "migrations", monkeypatch)  # the real ones plus a new one
    with pytest.raises(MigrationError, match=f"migration {BROKEN_ID} of apiclub failed"):
        await migrate(create_sqlite_engine(path))
