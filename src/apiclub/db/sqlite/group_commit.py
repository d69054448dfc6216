"""Group commit: the writes waiting while one commit syncs to disk share the next commit.

With `synchronous=FULL` every commit waits for an fsync, and SQLite lets one writer in at a
time: one transaction per request caps writes at one fsync each, and 32 writers queue on the
lock (the busy timeout) and time out. Here one connection in one thread does every write of
the process. It takes all the writes queued so far (up to `MAX_BATCH`), runs them in one
IMMEDIATE transaction and commits once; each caller learns its outcome only after that commit
is on disk. A 201 therefore still means what it did with a transaction per write: the row
survives a process crash or a power loss from the moment the answer is sent (issue #6).

A write that fails (the disk is full, the file is read-only) fails alone: the transaction is
rolled back, that write gets the error, and the others run again in a new transaction. A
failed COMMIT fails every write in it, since none of them is stored. A write whose caller
was cancelled (its client gone, the stop's deadline) before its transaction began is not made.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any

from apiclub.db.sqlite.threads import Connect, Row, closed_error, fetch, settle
from apiclub.observe import emit

MAX_BATCH = 256
"""Writes per commit at most: bounds how long the first of them waits for the last."""


@dataclass
class _Write:
    sql: str
    args: Sequence[Any]
    future: asyncio.Future[list[Row]] = field(repr=False)


class GroupCommitWriter:
    """The process's one writing connection, opened on first use by its own daemon thread.

    `check` runs in that thread before every transaction (the `DatabaseGuard`'s file check):
    what it raises fails the whole batch, and nothing is written.
    """

    def __init__(self, connect: Connect, check: Callable[[], None], name: str) -> None:
        self._connect = connect
        self._check = check
        self._queue: SimpleQueue[_Write | None] = SimpleQueue()
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.commits = 0
        """Transactions committed so far: fewer than the writes when they were grouped."""
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def write(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one write statement in the next group commit; its rows, once committed.

        Raises:
            sqlite3.Error: the write or its commit failed; nothing of it is stored.
        """
        future: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise closed_error()
            self._queue.put(_Write(sql, args, future))
        return await future

    def close(self, timeout: float | None = None) -> None:
        """Finish the writes queued so far, close the connection; wait up to `timeout` s.

        Writes asked for later fail at once with `closed_error()`.
        """
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit([write for write in batch if not write.future.cancelled()])
        if self._connection is not None:
            self._connection.close()

    def _commit(self, batch: list[_Write]) -> None:
        while batch:
            try:
                connection = self._open()  # a new connection checks the file as it opens
                began = time.perf_counter()
                connection.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                _fail(batch, exc)
                return
            try:
                # After BEGIN, which may have waited the busy timeout for another process's
                # lock: the file may have gone meanwhile, and nothing may go to a deleted file.
                self._check()
            except BaseException as exc:
                self._roll_back(connection)
                _fail(batch, exc)
                return
            results: list[list[Row]] = []
            for write in batch:
                try:
                    results.append(fetch(connection, write.sql, write.args))
                except BaseException as exc:
                    self._roll_back(connection)
                    _fail([write], exc)
                    batch = [other for other in batch if other is not write]
                    break  # run the others again, without it
            else:
                try:
                    self._check()  # the last moment a deleted file can still be refused
                    connection.execute("COMMIT")
                except BaseException as exc:
                    self._roll_back(connection)
                    _fail(batch, exc)
                    return
                self.commits += 1
                emit("db.commit", batch=len(batch), seconds=time.perf_counter() - began)
                for write, rows in zip(batch, results, strict=True):
                    settle(write.future, rows, None)
                return

    def _roll_back(self, connection: sqlite3.Connection) -> None:
        # SQLite may have rolled back already: after SQLITE_FULL or SQLITE_IOERR, for instance
        # (https://www.sqlite.org/lang_transaction.html, "Response To Errors Within A
        # Transaction"). A rollback that fails leaves the transaction open: start afresh.
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.rollback()
        if connection.in_transaction:
            connection.close()
            self._connection = None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection


def _fail(batch: list[_Write], error: BaseException) -> None:
    for write in batch:
        # A copy each: raised in several tasks, one exception would gather all their tracebacks.
        settle(write.future, None, _copy(error) if len(batch) > 1 else error)


def _copy(error: BaseException) -> BaseException:
    try:
        twin = copy.copy(error)  # keeps the attributes, `sqlite_errorcode` among them
    except Exception:  # an exception that cannot be rebuilt from its args: share it
        return error
    twin.__cause__, twin.__context__ = error.__cause__, error.__context__
    return twin
