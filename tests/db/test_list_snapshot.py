"""The task list's page and `total` come from one snapshot, even when a write commits between.

A real concurrent writer (on PostgreSQL the app's own `create_task`; on SQLite another connection)
commits exactly between the page query and the count query of `list_tasks`: deterministic,
where a writer in a loop would meet that instant only sometimes.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from piccolo.columns.combination import WhereRaw

from apiclub.db import bind_engine, close_database, open_database, tasks
from apiclub.db.sqlite import engine as sqlite_engine
from apiclub.settings import Settings
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

BEFORE = ["task 0", "task 1", "task 2"]


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    engine = await open_database(Settings(data_dir=tmp_path / "data", database_url=url))
    bind_engine(engine)
    try:
        for name in BEFORE:
            await tasks.create_task(name)
        yield request.param
    finally:
        await close_database(engine)


@pytest.fixture
def write_between(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit one more task after `list_tasks` read its page and before it counts."""
    if database == "sqlite":
        _write_between_sqlite_statements(monkeypatch)
        return
    count = tasks._count

    def count_after_a_write(filters: list[WhereRaw]) -> Coroutine[Any, Any, Any]:
        async def write_then_count() -> Any:
            # A fresh context: outside the reader's transaction, as another request would be.
            writer = tasks.create_task("task between")
            await asyncio.create_task(writer, context=contextvars.Context())
            return await count(filters)

        return write_then_count()

    monkeypatch.setattr(tasks, "_count", count_after_a_write)


def _write_between_sqlite_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite reads the page and the count in one call to a reader's thread: the write comes
    # from another connection, committed right after the reader's first statement.
    fetch = sqlite_engine.fetch
    written = False

    def fetch_then_write(connection: sqlite3.Connection, sql: str, args: Any = ()) -> Any:
        nonlocal written
        rows = fetch(connection, sql, args)
        if not written and '"task"."id"' in sql:  # the page query
            written = True
            (path,) = [row["file"] for row in connection.execute("PRAGMA database_list")]
            with closing(sqlite3.connect(path, isolation_level=None)) as writer:
                writer.execute(
                    "INSERT INTO task (name, created_at) VALUES ('task between', ?)",
                    [datetime.now(UTC).isoformat(sep=" ")],
                )
        return rows

    monkeypatch.setattr(sqlite_engine, "fetch", fetch_then_write)


@pytest.mark.parametrize("name", [None, "task"], ids=["all", "filtered"])
async def test_page_and_total_agree_when_a_write_commits_between_them(
    database: str, write_between: None, name: str | None
) -> None:
    rows, total = await tasks.list_tasks(name=name, limit=100)
    assert [row["name"] for row in rows] == BEFORE
    assert total == len(BEFORE)


@pytest.mark.parametrize("name", [None, "task"], ids=["all", "filtered"])
async def test_the_write_between_did_commit_so_the_next_list_shows_it(
    database: str, write_between: None, name: str | None
) -> None:
    # The twin: the write really landed between the two reads (a total read with a snapshot of
    # its own would be 4), and the next list, a new snapshot, sees it in page and total alike.
    await tasks.list_tasks(name=name, limit=100)
    rows, total = await tasks.list_tasks(name=name, limit=100)
    assert [row["name"] for row in rows][:3] == BEFORE
    assert "task between" in [row["name"] for row in rows]
    assert total == len(rows) >= len(BEFORE) + 1
