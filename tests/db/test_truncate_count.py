"""Emptying the task table by hand keeps `GET /task/`'s total right, on both engines.

An operator empties the table from outside apiclub (asyncpg or sqlite3, not the API), then the
API lists the tasks. PostgreSQL's TRUNCATE fires no row trigger: the AFTER TRUNCATE trigger of
migration `2026-11-26T00:00:00:000000` resets the count. SQLite has no TRUNCATE, and a DELETE
without WHERE runs the row triggers, since the table has some.
"""

from __future__ import annotations

import importlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import httpx
import piccolo_migrations
import pytest

from apiclub.api import create_app
from apiclub.db import write_transaction
from apiclub.db.piccolo_app import APP_CONFIG
from apiclub.settings import Settings
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

TRUNCATE_MIGRATION = "apiclub_2026_11_26t00_00_00_000000"
NAMES = ["one", "two", "three"]
# rank=1 compares the trigram index with the task table (sqlite.org/fts5.html 6.7).
FTS_INTEGRITY_CHECK = (
    "INSERT INTO task_name_fts (task_name_fts, rank) VALUES ('integrity-check', 1)"
)

Client = httpx.AsyncClient


@asynccontextmanager
async def api(
    tmp_path: Path, database_url: str | None, *, names: Sequence[str] = NAMES
) -> AsyncIterator[Client]:
    """The API on the database (migrated by its start-up) with `names` created through it."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for name in names:
                await create(client, name)
            yield client


async def create(client: Client, name: str) -> dict[str, object]:
    response = await client.post("/task/", json={"name": name})
    assert response.status_code == 201, response.text
    task: dict[str, object] = response.json()
    return task


async def listed(client: Client) -> tuple[list[object], int]:
    """The ids of the first page and the total, as `GET /task/` answers them."""
    response = await client.get("/task/", params={"page_size": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    return [task["id"] for task in body["tasks"]], body["total"]


async def operator(url: str, *statements: str) -> None:
    """Run `statements` in one transaction, as an operator's psql session would."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        async with connection.transaction():
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


async def run_truncate_migration(*, backwards: bool) -> None:
    """Run the migration under test one way on the bound engine, as the runner does."""
    migration = importlib.import_module(f"piccolo_migrations.{TRUNCATE_MIGRATION}")
    manager = await migration.forwards()
    async with write_transaction():
        await manager.run(backwards=backwards)


def migrations_before_truncate(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the apiclub app at a copy of the migrations that precede the one under test."""
    folder.mkdir()
    for path in Path(piccolo_migrations.__file__).parent.glob("apiclub_*.py"):
        if path.stem < TRUNCATE_MIGRATION:
            shutil.copy(path, folder)
    monkeypatch.setattr(APP_CONFIG, "migrations_folder_path", str(folder))


async def postgres_triggers(url: str) -> set[str]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'task'::regclass AND NOT tgisinternal"
        )
    finally:
        await connection.close()
    return {row["tgname"] for row in rows}


def sqlite_schema(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def sqlite_operator(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


async def test_postgres_truncate_resets_the_total(postgres_url: str, tmp_path: Path) -> None:
    async with api(tmp_path, postgres_url) as client:
        assert await listed(client) == ([1, 2, 3], 3)

        await operator(postgres_url, "TRUNCATE task")
        assert await listed(client) == ([], 0)
        task = await create(client, "after")
        assert await listed(client) == ([task["id"]], 1)
        assert (await client.delete(f"/task/{task['id']}")).status_code == 200
        assert await listed(client) == ([], 0)  # not -1


async def test_postgres_truncate_restart_identity_starts_ids_and_total_over(
    postgres_url: str, tmp_path: Path
) -> None:
    async with api(tmp_path, postgres_url) as client:
        await operator(postgres_url, "TRUNCATE task RESTART IDENTITY")
        assert await listed(client) == ([], 0)
        assert (await create(client, "first again"))["id"] == 1
        assert await listed(client) == ([1], 1)


async def test_postgres_truncate_then_insert_in_one_transaction_counts_the_insert(
    postgres_url: str, tmp_path: Path
) -> None:
    async with api(tmp_path, postgres_url) as client:
        await operator(
            postgres_url, "TRUNCATE task", "INSERT INTO task (name, created_at) VALUES ('x', now())"
        )
        assert await listed(client) == ([4], 1)


async def test_postgres_rolled_back_truncate_keeps_tasks_and_total(
    postgres_url: str, tmp_path: Path
) -> None:
    async with api(tmp_path, postgres_url) as client:
        with pytest.raises(RuntimeError, match="changed my mind"):
            connection = await asyncpg.connect(postgres_url, timeout=10)
            try:
                async with connection.transaction():
                    await connection.execute("TRUNCATE task")
                    raise RuntimeError("changed my mind")
            finally:
                await connection.close()
        assert await listed(client) == ([1, 2, 3], 3)


async def test_postgres_without_the_trigger_truncate_leaves_the_total_stale(
    postgres_url: str, tmp_path: Path
) -> None:
    async with api(tmp_path, postgres_url) as client:
        await run_truncate_migration(backwards=True)
        assert await postgres_triggers(postgres_url) == {"task_count_change"}

        await operator(postgres_url, "TRUNCATE task")
        assert await listed(client) == ([], 3)  # the bug this migration fixes
        task = await create(client, "after")
        assert await listed(client) == ([task["id"]], 4)

        # Forwards again: the trigger is back and the stale count is recounted.
        await run_truncate_migration(backwards=False)
        assert await postgres_triggers(postgres_url) == {"task_count_change", "task_count_truncate"}
        assert await listed(client) == ([task["id"]], 1)


async def test_postgres_migration_repairs_a_table_truncated_before_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        migrations_before_truncate(tmp_path / "before", patched)
        async with api(tmp_path, postgres_url) as client:
            await operator(postgres_url, "TRUNCATE task")
            assert await listed(client) == ([], 3)
    async with api(tmp_path, postgres_url, names=()) as client:  # the migration pending
        assert await listed(client) == ([], 0)
        await operator(postgres_url, "TRUNCATE task")
        task = await create(client, "after")
        assert await listed(client) == ([task["id"]], 1)


async def test_postgres_backwards_leaves_the_earlier_schema(
    postgres_url: str, tmp_path: Path
) -> None:
    async with api(tmp_path, postgres_url, names=()):
        await run_truncate_migration(backwards=True)
    connection = await asyncpg.connect(postgres_url, timeout=10)
    try:
        functions = await connection.fetch("SELECT proname FROM pg_proc WHERE proname LIKE 'task%'")
    finally:
        await connection.close()
    assert {row["proname"] for row in functions} == {"task_count_change"}
    assert await postgres_triggers(postgres_url) == {"task_count_change"}


async def test_sqlite_delete_without_where_runs_the_row_triggers(tmp_path: Path) -> None:
    async with api(tmp_path, None) as client:
        sqlite_operator(tmp_path / "data" / "api.db", "DELETE FROM task", FTS_INTEGRITY_CHECK)
        assert await listed(client) == ([], 0)
        task = await create(client, "after")
        assert await listed(client) == ([task["id"]], 1)


async def test_sqlite_delete_without_the_delete_trigger_leaves_the_total_stale(
    tmp_path: Path,
) -> None:
    async with api(tmp_path, None) as client:
        database = tmp_path / "data" / "api.db"
        sqlite_operator(database, "DROP TRIGGER task_after_delete", "DELETE FROM task")
        assert await listed(client) == ([], 3)
        with pytest.raises(sqlite3.DatabaseError):  # the index still holds the deleted names
            sqlite_operator(database, FTS_INTEGRITY_CHECK)


async def test_sqlite_migration_changes_nothing_either_way(tmp_path: Path) -> None:
    database = tmp_path / "data" / "api.db"
    async with api(tmp_path, None, names=["kept"]) as client:
        schema = sqlite_schema(database)
        assert "task_after_delete" in dict(schema)
        await run_truncate_migration(backwards=True)
        assert sqlite_schema(database) == schema
        await run_truncate_migration(backwards=False)
        assert sqlite_schema(database) == schema
        assert await listed(client) == ([1], 1)
