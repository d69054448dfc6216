"""SQLite connections that live as long as the engine, each in a thread of its own.

Piccolo's SQLite engine opens a connection, and starts a thread for it, for every query (about
a millisecond of set-up each time, more than the query). Here a few connections stay open;
each belongs to one daemon thread that runs the calls queued to it in order, so a query costs
one hand-off to that thread and back. Daemon threads, unlike aiosqlite's: an engine that is
never closed (a short script, a test) cannot keep the process from exiting, and SQLite's
journal makes an exit mid-statement safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
Row = dict[str, Any]
Connect = Callable[[], sqlite3.Connection]
"""Opens one connection; called in the thread that will use it."""
Job = Callable[[sqlite3.Connection], T]


def settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    """Hand a thread's outcome to `future`, from that thread; its loop may be gone by now."""

    def deliver() -> None:
        if future.done():  # its awaiter was cancelled: nobody wants the outcome
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
        future.get_loop().call_soon_threadsafe(deliver)


def fetch(connection: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    """Run one statement and return its rows (dicts, through the connection's row factory)."""
    return connection.execute(sql, args).fetchall()


def closed_error() -> sqlite3.OperationalError:
    """What a query gets once the engine is closed (the server is stopping): a 503 ("busy")."""
    error = sqlite3.OperationalError("the database connections are closed: the server is stopping")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY
    return error


@dataclass
class _Barrier:
    """Queued behind the jobs before it: runs `callback` on `loop` once they have run."""

    loop: asyncio.AbstractEventLoop
    callback: Callable[[], None]


class ConnectionThread:
    """One connection, opened on first use by the daemon thread that runs every call on it.

    A call whose connect fails gets the error; the next call tries to connect again. A call
    whose caller was cancelled before it started is skipped. Calls made after `close()` fail
    with `closed_error()`.
    """

    def __init__(self, connect: Connect, name: str) -> None:
        self._connect = connect
        self._jobs: SimpleQueue[tuple[asyncio.Future[Any] | None, Job[Any]] | _Barrier | None]
        self._jobs = SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """Whether every call queued so far has run."""
        return self._pending == 0

    async def call(self, job: Job[T]) -> T:
        """Run `job(connection)` in the thread; its result, or what it raised."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(future, job)
        return await future

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its rows. (Piccolo's transactions and savepoints call this.)"""
        return await self.call(lambda connection: fetch(connection, sql, args))

    def end_transaction(self) -> None:
        """Roll back a transaction left open (a failed COMMIT, a cancelled caller); no wait."""
        self._put(None, _roll_back_if_open)

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call `callback` on this event loop once the calls queued so far have run."""
        if self.idle:
            callback()
        else:
            self._jobs.put(_Barrier(asyncio.get_running_loop(), callback))

    def close(self) -> None:
        """Close the connection once the calls queued before this one have run; no wait."""
        with self._lock:
            self._closed = True
        self._jobs.put(None)

    def _put(self, future: asyncio.Future[Any] | None, job: Job[Any]) -> None:
        with self._lock:
            if self._closed:
                if future is None:
                    return
                raise closed_error()
            self._pending += 1
        self._jobs.put((future, job))

    def _serve(self) -> None:
        connection: sqlite3.Connection | None = None
        while (item := self._jobs.get()) is not None:
            if isinstance(item, _Barrier):
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    item.loop.call_soon_threadsafe(item.callback)
                continue
            connection = self._run(connection, *item)
            with self._lock:
                self._pending -= 1
        if connection is not None:
            connection.close()
        _fail_the_rest(self._jobs)

    def _run(
        self,
        connection: sqlite3.Connection | None,
        future: asyncio.Future[Any] | None,
        job: Job[Any],
    ) -> sqlite3.Connection | None:
        if future is not None and future.cancelled():
            return connection  # its caller is gone: nobody waits for it
        if future is None and connection is None:
            return connection  # housekeeping for a connection never opened
        try:
            if connection is None:
                connection = self._connect()
            result = job(connection)
        except BaseException as exc:  # handed to the caller, raised there
            if future is not None:
                settle(future, None, exc)
        else:
            if future is not None:
                settle(future, result, None)
        return connection


def _fail_the_rest(jobs: SimpleQueue[Any]) -> None:
    # Calls queued as the thread stopped: told, never left waiting.
    while True:
        try:
            item = jobs.get_nowait()
        except Empty:
            return
        if isinstance(item, tuple) and item[0] is not None:
            settle(item[0], None, closed_error())


def _roll_back_if_open(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.rollback()


class ConnectionPool:
    """Up to `size` `ConnectionThread`s, each lent to one caller at a time.

    A caller holds a connection for one query or one transaction (see `SQLiteDatabase`);
    while all are lent, callers wait in line for the next one returned. A connection comes
    back once the calls its borrower queued have run, even if the borrower was cancelled: the
    next borrower never waits behind abandoned work, and at most `size` queries run at once.
    """

    def __init__(self, connect: Connect, size: int, name: str) -> None:
        self._connect = connect
        self._size = size
        self._name = name
        self._idle: list[ConnectionThread] = []
        self._opened: list[ConnectionThread] = []
        self._waiters: deque[asyncio.Future[ConnectionThread]] = deque()
        self._closed = False
        self.loans = 0
        """How many times a connection was lent: the reads and transactions sent to threads."""

    @property
    def opened(self) -> int:
        """How many connections the pool holds (it opens them as callers need them)."""
        return len(self._opened)

    async def acquire(self) -> ConnectionThread:
        """A connection for the caller alone, until it calls `release`.

        Raises:
            sqlite3.OperationalError: the pool is closed (`closed_error()`).
        """
        if self._closed:
            raise closed_error()
        self.loans += 1
        if self._idle:
            return self._idle.pop()
        if len(self._opened) < self._size:
            thread = ConnectionThread(self._connect, f"{self._name}-{len(self._opened) + 1}")
            self._opened.append(thread)
            return thread
        waiter: asyncio.Future[ConnectionThread] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as the caller was cancelled
            raise

    def release(self, thread: ConnectionThread) -> None:
        """Take back a connection from `acquire` (which must not leave a transaction open)."""
        thread.when_idle(lambda: self._give_back(thread))

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[ConnectionThread]:
        """`acquire` and `release` around a block."""
        thread = await self.acquire()
        try:
            yield thread
        finally:
            self.release(thread)

    def close(self) -> None:
        """Close every connection once its queued calls have run; no wait. Later calls fail."""
        self._closed = True
        for thread in self._opened:
            thread.close()
        self._opened.clear()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is gone
                    waiter.set_exception(closed_error())

    def _give_back(self, thread: ConnectionThread) -> None:
        if self._closed:
            thread.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is gone
                    waiter.set_result(thread)
                    return
        self._idle.append(thread)
