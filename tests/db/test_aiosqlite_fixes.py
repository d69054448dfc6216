"""A failed aiosqlite connect must not leave its worker thread racing the closing loop.

Without the patch, 20 short event loops that each see one failed connect gave 10 thread
errors ("RuntimeError: Event loop is closed") here; the test needs only one to fail.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from apiclub.db.aiosqlite_fixes import await_stop_after_failed_connect

LOOPS = 20


@pytest.fixture
def thread_errors() -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []
    original = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[arg-type]
    try:
        yield errors
    finally:
        threading.excepthook = original


def test_failed_connects_in_short_loops_leave_no_thread_error(
    tmp_path: Path, thread_errors: list[BaseException]
) -> None:
    await_stop_after_failed_connect()
    # mode=rw never creates a file: connecting to a missing one fails inside the thread.
    missing = (tmp_path / "missing.db").as_uri() + "?mode=rw"

    async def fail_once() -> None:
        with pytest.raises(sqlite3.OperationalError):
            await aiosqlite.connect(missing, uri=True)

    before = set(threading.enumerate())
    for _ in range(LOOPS):
        asyncio.run(fail_once())
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    assert thread_errors == []


def test_a_good_connect_still_works(tmp_path: Path) -> None:
    await_stop_after_failed_connect()

    async def select_one() -> list[object]:
        async with aiosqlite.connect(tmp_path / "ok.db") as connection:
            async with connection.execute("SELECT 1") as cursor:
                return list(await cursor.fetchall())

    assert asyncio.run(select_one()) == [(1,)]
