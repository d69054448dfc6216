from __future__ import annotations

import importlib
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import piccolo_migrations
import pytest
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from apiclub.db import create_sqlite_engine, migrate, tasks, write_transaction
from apiclub.db.piccolo_app import APP_CONFIG

pytestmark = pytest.mark.anyio

SEARCH_MIGRATION = "apiclub_2026_11_25t20_40_00_000000"
NAMES = [
    "buy milk",
    "Buy Bread",
    "BUY STAMPS",
    "100%",
    "100 percent",
    "a_b",
    "axb",
    'say "hi"',
    "back\\slash",
    "café",
    "CAFÉ",
    "日本語のタスク",
    "nul\0inside",
    "x",
    "ÉCOLE",
]


def reference(needle: str, names: list[str]) -> list[int]:
    """The contract in Python: ids (1-based) of names holding `needle`, ASCII case folded."""
    fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    return [i + 1 for i, name in enumerate(names) if needle.translate(fold) in name.translate(fold)]


def fts_integrity_check(path: Path) -> None:
    # rank=1 compares the index with the content table (sqlite.org/fts5.html 6.7).
    check = "INSERT INTO task_name_fts (task_name_fts, rank) VALUES ('integrity-check', 1)"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(check)


def stored_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        (count,) = conn.execute("SELECT n FROM task_count WHERE id = 1").fetchone()
    return int(count)


async def search(name: str) -> tuple[list[int], int]:
    rows, total = await tasks.list_tasks(name=name, limit=100)
    return [row["id"] for row in rows], total


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "api.db"
    await migrate(create_sqlite_engine(path))
    for name in NAMES:
        await tasks.create_task(name)
    yield path


@pytest.mark.parametrize(
    "needle",
    [
        "buy",  # 3+ characters: the trigram index, then LIKE
        "BUY",
        "bread",
        "%",  # 1 and 2 characters: the LIKE scan
        "0%",
        "_",
        "a_",
        "a_b",
        '"hi"',
        '"',
        "\\",
        "k\\s",
        "café",
        "CAF",
        "語のタ",
        "\0",
        "l\0i",
        "x",
    ],
)
async def test_filter_matches_the_contract(database: Path, needle: str) -> None:
    expected = reference(needle, NAMES)
    assert expected, "each needle here matches something"
    assert await search(needle) == (expected, len(expected))


@pytest.mark.parametrize(
    "needle",
    [
        # Only ASCII letters fold: É is not é, as with SQLite's LIKE. The trigram index folds
        # them, so this proves the LIKE recheck.
        "école",
        "日本語ノ",
        "100%%",
        "a%b",  # % is no wildcard
        "a__",
        "b_",
        "\0nul",
        "nul\0\0",
        "zz",
        "z",
        "milk bread",
    ],
)
async def test_filter_finds_nothing_that_does_not_hold_the_text(
    database: Path, needle: str
) -> None:
    assert reference(needle, NAMES) == []
    assert await search(needle) == ([], 0)


async def test_total_and_index_follow_creates_renames_and_deletes(database: Path) -> None:
    assert (await tasks.list_tasks(name=None, limit=1))[1] == len(NAMES)
    created = await tasks.create_task("walk the dog")
    await tasks.update_task(1, "sell milk")  # was "buy milk"
    await tasks.delete_task(2)  # "Buy Bread"
    await tasks.delete_task(created["id"])

    assert (await tasks.list_tasks(name=None, limit=1))[1] == len(NAMES) - 1
    assert stored_count(database) == len(NAMES) - 1
    assert await search("buy") == ([3], 1)
    assert await search("sell milk") == ([1], 1)
    assert await search("walk the") == ([], 0)
    fts_integrity_check(database)


async def test_a_rolled_back_write_changes_neither_count_nor_index(database: Path) -> None:
    with pytest.raises(RuntimeError, match="abandon"):
        async with write_transaction():
            await tasks.create_task("ghost task")
            await tasks.update_task(1, "ghost rename")
            raise RuntimeError("abandon the transaction")
    assert stored_count(database) == len(NAMES)
    assert await search("ghost") == ([], 0)
    assert await search("buy milk") == ([1], 1)
    fts_integrity_check(database)


async def test_cursor_pages_after_an_id_and_total_ignores_it(database: Path) -> None:
    rows, total = await tasks.list_tasks(name="buy", limit=10, after_id=1)
    assert ([row["id"] for row in rows], total) == ([2, 3], 3)
    rows, total = await tasks.list_tasks(name=None, limit=2, after_id=len(NAMES) - 1)
    assert ([row["id"] for row in rows], total) == ([len(NAMES)], len(NAMES))
    rows, total = await tasks.list_tasks(name=None, limit=2, after_id=len(NAMES))
    assert (rows, total) == ([], len(NAMES))


def only_initial_migration(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder.mkdir()
    source = Path(piccolo_migrations.__file__).parent
    initial = sorted(source.glob("apiclub_*.py"))[0]
    assert initial.stem != SEARCH_MIGRATION
    shutil.copy(initial, folder)
    monkeypatch.setattr(APP_CONFIG, "migrations_folder_path", str(folder))


async def test_migration_backfills_a_database_that_has_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "api.db"
    with monkeypatch.context() as patched:
        only_initial_migration(tmp_path / "initial", patched)
        assert len(await migrate(create_sqlite_engine(path))) == 1
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO task (name, created_at) VALUES (?, '2026-11-25 17:00:00+00:00')",
            [(name,) for name in NAMES],
        )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "task_name_fts" not in tables

    assert (await migrate(create_sqlite_engine(path)))[0] == "2026-11-25T20:40:00:000000"
    assert stored_count(path) == len(NAMES)
    fts_integrity_check(path)
    assert await search("buy") == ([1, 2, 3], 3)
    await tasks.create_task("buy more")
    assert await search("buy") == ([1, 2, 3, len(NAMES) + 1], 4)


async def test_migration_runs_backwards_and_forwards_again(database: Path) -> None:
    engine = create_sqlite_engine(database)
    await migrate(engine)
    migration = importlib.import_module(f"piccolo_migrations.{SEARCH_MIGRATION}")

    await run_manager(engine, migration, backwards=True)
    with closing(sqlite3.connect(database)) as conn:
        objects = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not {"task_count", "task_name_fts", "task_after_insert"} & objects
    created = await tasks.create_task("buy while unindexed")  # plain writes still work

    await run_manager(engine, migration, backwards=False)
    assert stored_count(database) == len(NAMES) + 1
    assert await search("buy") == ([1, 2, 3, created["id"]], 4)
    fts_integrity_check(database)


async def run_manager(engine: SQLiteEngine, migration: object, *, backwards: bool) -> None:
    manager = await migration.forwards()  # type: ignore[attr-defined]
    async with engine.transaction(transaction_type=TransactionType.immediate):
        await manager.run(backwards=backwards)
