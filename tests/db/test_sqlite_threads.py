"""Long-lived connections in threads: cancelled callers, a bounded pool, a clean close."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from apiclub.db.sqlite.threads import ConnectionPool, ConnectionThread

pytestmark = pytest.mark.anyio


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def held_by(
    gate: threading.Event, ran: list[str], name: str
) -> Callable[[sqlite3.Connection], str]:
    """A call that records that it ran, then waits for `gate`."""

    def job(connection: sqlite3.Connection) -> str:
        ran.append(name)
        gate.wait(10)
        return name

    return job


async def test_calls_whose_callers_were_cancelled_are_skipped(tmp_path: Path) -> None:
    thread = ConnectionThread(partial(connect, tmp_path / "db"), "test-thread")
    gate, ran = threading.Event(), []
    running = asyncio.ensure_future(thread.call(held_by(gate, ran, "running")))
    await asyncio.sleep(0.1)
    abandoned = [asyncio.ensure_future(thread.call(held_by(gate, ran, f"a{i}"))) for i in range(5)]
    await asyncio.sleep(0)
    for call in abandoned:
        call.cancel()
    gate.set()
    assert await running == "running"
    assert await thread.call(lambda connection: "next") == "next"
    assert ran == ["running"]  # none of the abandoned calls ran
    thread.close()


async def test_a_connection_comes_back_only_once_its_work_is_done(tmp_path: Path) -> None:
    pool = ConnectionPool(partial(connect, tmp_path / "db"), 1, "test-pool")
    gate, ran = threading.Event(), []

    async def borrow_and_give_up() -> None:
        async with pool.connection() as thread:
            await thread.call(held_by(gate, ran, "slow"))

    slow = asyncio.ensure_future(borrow_and_give_up())
    await asyncio.sleep(0.1)
    slow.cancel()  # its query still runs in the thread
    next_borrower = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.1)
    assert not next_borrower.done()  # not lent while the abandoned query runs
    gate.set()
    thread = await asyncio.wait_for(next_borrower, 10)
    assert await thread.execute("SELECT 1 AS one") == [(1,)]
    pool.release(thread)
    pool.close()


async def test_after_close_calls_fail_instead_of_waiting(tmp_path: Path) -> None:
    pool = ConnectionPool(partial(connect, tmp_path / "db"), 2, "test-pool")
    lent = await pool.acquire()
    await lent.execute("BEGIN")
    pool.close()
    for attempt in (pool.acquire(), lent.execute("COMMIT")):
        with pytest.raises(sqlite3.OperationalError, match="closed") as refused:
            await asyncio.wait_for(attempt, 10)
        assert refused.value.sqlite_errorcode == sqlite3.SQLITE_BUSY
