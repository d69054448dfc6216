"""Each engine classifies its own errors: "unavailable" (503) or a bug (500), and busy or not.

Real errors from a real SQLite file; the PostgreSQL classification's own tests, on a real server,
are in `test_postgres_engine` (`unavailable_reason`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from apiclub.db import Engine, Postgres, SQLiteDatabase, Unavailable
from apiclub.db.sqlite import DatabaseFileError

ENGINES: tuple[type[Engine], ...] = (SQLiteDatabase, Postgres)


def caught(run: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as error:
        run()
    return error.value


def test_sqlite_busy_past_the_timeout_is_unavailable_and_busy(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        holder.execute("BEGIN IMMEDIATE")
        exc = caught(lambda: waiter.execute("BEGIN IMMEDIATE"))
        assert SQLiteDatabase.unavailable(exc) == Unavailable("the database is busy", "busy")
        holder.execute("ROLLBACK")
        waiter.execute("BEGIN IMMEDIATE")  # the twin: released, the same statement runs
        waiter.execute("ROLLBACK")
    finally:
        holder.close()
        waiter.close()


def test_sqlite_read_only_is_unavailable_but_not_busy(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x)")
    setup.close()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        exc = caught(lambda: reader.execute("INSERT INTO t VALUES (1)"))
    finally:
        reader.close()
    assert SQLiteDatabase.unavailable(exc) == Unavailable("the database is read-only")


def test_a_bug_is_no_outage_on_either_engine(tmp_path: Path) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        syntax = caught(lambda: connection.execute("SELEKT 1"))
    finally:
        connection.close()
    assert SQLiteDatabase.unavailable(syntax) is None
    assert Postgres.unavailable(asyncpg.UniqueViolationError("duplicate")) is None
    assert SQLiteDatabase.unavailable(ValueError("a bug")) is None


def test_each_engine_classifies_only_its_own_errors() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert Postgres.unavailable(refused) == Unavailable("the database cannot be reached")
    assert SQLiteDatabase.unavailable(refused) is None  # not SQLite's: a bug there, a 500
    assert not issubclass(DatabaseFileError, SQLiteDatabase.unavailable_errors)  # own handler


def test_each_engine_names_the_errors_it_classifies_and_its_largest_id() -> None:
    assert SQLiteDatabase.unavailable_errors == (sqlite3.Error,)
    assert OSError in Postgres.unavailable_errors
    assert [engine.max_task_id for engine in ENGINES] == [2**63 - 1, 2**31 - 1]
