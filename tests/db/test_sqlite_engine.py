"""SQLite's long-lived connections: a bounded pool of readers, one writer, a clean close."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from apiclub.db import bind_engine, create_sqlite_engine, migrate, tasks
from apiclub.db.sqlite.engine import READERS, SQLiteDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> SQLiteDatabase:
    engine = create_sqlite_engine(tmp_path / "api.db")
    await migrate(engine)
    bind_engine(engine)
    return engine


async def test_many_concurrent_reads_share_a_few_connections(engine: SQLiteDatabase) -> None:
    await tasks.create_task("read me")
    # A `name` filter costs as many rows as match: those reads go to the reader threads.
    pages = await asyncio.gather(*(tasks.list_tasks(name="read", limit=10) for _ in range(200)))
    assert all(([row["name"] for row in rows], total) == (["read me"], 1) for rows, total in pages)
    assert 1 <= engine.readers.opened <= READERS


async def test_bounded_reads_run_in_place_and_never_wait_for_a_lock(
    engine: SQLiteDatabase,
) -> None:
    created = await tasks.create_task("read me")
    loans = engine.readers.loans
    rows = await asyncio.gather(*(tasks.get_task(created["id"]) for _ in range(50)))
    assert all(row is not None and row["name"] == "read me" for row in rows)
    assert (await tasks.list_tasks(name=None, limit=10))[1] == 1
    assert engine.readers.loans == loans  # no hand-off to a thread
    # The event loop's own connection fails at once when busy, instead of blocking the loop.
    in_place = engine._in_place.connection()
    assert in_place.execute("PRAGMA busy_timeout").fetchone() == {"timeout": 0}


async def test_a_deep_page_is_read_by_a_reader_thread(engine: SQLiteDatabase) -> None:
    for i in range(3):
        await tasks.create_task(f"task {i}")
    loans = engine.readers.loans
    rows, total = await tasks.list_tasks(name=None, limit=10, offset=tasks.BOUNDED_OFFSET + 1)
    assert (rows, total) == ([], 3)
    assert engine.readers.loans == loans + 1


async def test_a_page_and_its_total_agree_while_writes_land(engine: SQLiteDatabase) -> None:
    async def write() -> None:
        for i in range(40):
            await tasks.create_task(f"task {i}")

    async def read() -> list[tuple[int, int]]:
        seen = []
        for _ in range(40):
            rows, total = await tasks.list_tasks(name=None, limit=1000)
            seen.append((len(rows), total))
        return seen

    _, seen = await asyncio.gather(write(), read())
    assert all(count == total for count, total in seen)


async def test_close_commits_the_queued_writes_and_ends_the_threads(tmp_path: Path) -> None:
    path = tmp_path / "api.db"
    engine = create_sqlite_engine(path)
    await migrate(engine)
    bind_engine(engine)
    writes = [asyncio.ensure_future(tasks.create_task(f"queued {i}")) for i in range(30)]
    await asyncio.sleep(0)
    writer_thread = engine.writer._thread
    await asyncio.to_thread(engine.close)
    assert not writer_thread.is_alive()
    assert len(await asyncio.gather(*writes)) == 30
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM task").fetchone() == (30,)


async def test_a_waiting_reader_gets_the_next_connection_given_back(
    engine: SQLiteDatabase,
) -> None:
    lent = [await engine.readers.acquire() for _ in range(READERS)]
    waiting = asyncio.ensure_future(engine.readers.acquire())
    cancelled = asyncio.ensure_future(engine.readers.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    cancelled.cancel()
    engine.readers.release(lent.pop())
    handed = await asyncio.wait_for(waiting, 5)
    # The cancelled waiter did not swallow a connection: one given back is lent again.
    engine.readers.release(handed)
    assert await asyncio.wait_for(engine.readers.acquire(), 5) is handed
    assert await handed.execute("SELECT 1 AS one") == [{"one": 1}]
