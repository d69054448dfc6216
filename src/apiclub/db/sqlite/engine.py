"""Piccolo's SQLite engine on long-lived connections: a few readers and one group-committing writer.

Piccolo builds the SQL and runs migrations as before; what changes is where a query runs:

- Reads whose cost does not grow with the table (`read_snapshot(bounded=True)`) run on the
  event loop's own connection. Other reads, and transactions (migrations), borrow one of
  `READERS` pooled connections, each in a thread of its own (`threads`). In WAL mode
  readers never wait for the writer, nor it for them.
- Single writes passed to `write()` go to the `GroupCommitWriter`, which commits whatever
  writes are waiting in one transaction, each answered once that commit is on disk.

Every use first checks that the path still names the file opened at start (`DatabaseGuard`);
a long-lived connection would otherwise go on writing to a deleted file.

Which of SQLite's errors mean "not now" rather than "bug" (`SQLiteDatabase.unavailable`) is
decided here, beside the code that raises them; `file.create_sqlite_engine` builds the engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from functools import partial
from typing import Any, ClassVar

from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.query.base import Query
from piccolo.querystring import QueryString

from apiclub.db.interface import Unavailable
from apiclub.db.sqlite.deadline import READ_DEADLINE, read_deadline
from apiclub.db.sqlite.group_commit import GroupCommitWriter
from apiclub.db.sqlite.guard import DatabaseGuard
from apiclub.db.sqlite.threads import Connect, ConnectionPool, ConnectionThread, Row, fetch

READERS = 4
"""Pooled reading connections: enough that a slow scan (a one-letter `name` filter over a
million tasks: docs/performance.md) leaves others to serve, few enough that their page caches
(2 MiB each at most, SQLite's default) stay small."""
CLOSE_WAIT_MARGIN = 5.0
"""Seconds `close()` waits for the queued writes beyond the busy timeout their BEGIN may wait."""
MAX_ROWID = 2**63 - 1
"""SQLite's largest integer, and so its largest rowid (the task id): a larger one cannot exist
and would fail inside SQLite as a query parameter."""

# Primary result codes (https://www.sqlite.org/rescode.html) that mean "not now" rather than
# "bug": the lock stayed taken past the busy timeout, or the file cannot be written.
_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY: Unavailable("the database is busy", "busy"),
    sqlite3.SQLITE_LOCKED: Unavailable("the database is busy", "busy"),
    sqlite3.SQLITE_READONLY: Unavailable("the database is read-only"),
    sqlite3.SQLITE_IOERR: Unavailable("the database cannot be read or written"),
    sqlite3.SQLITE_FULL: Unavailable("the database disk is full"),
    sqlite3.SQLITE_CANTOPEN: Unavailable("the database file cannot be opened"),
    # `deadline`: a read ran past its time limit and was stopped, freeing its reader.
    sqlite3.SQLITE_INTERRUPT: Unavailable("the query took too long and was stopped"),
}


class SQLiteDatabase(SQLiteEngine):
    """Piccolo's engine for the file `guard` watches, on pooled connections (module docstring)."""

    __slots__ = ("__weakref__", "_in_place", "guard", "read_deadline", "readers", "writer")

    max_task_id: ClassVar[int] = MAX_ROWID
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)

    @staticmethod
    def unavailable(exc: BaseException) -> Unavailable | None:
        """Why SQLite cannot serve now (busy past the timeout, read-only, full, I/O error,
        a read stopped at its deadline), for a 503; None when `exc` is a bug."""
        if not isinstance(exc, sqlite3.Error):
            return None
        return _UNAVAILABLE.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)

    def __init__(
        self,
        guard: DatabaseGuard,
        *,
        read_deadline: float = READ_DEADLINE,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(path=str(guard.path), **connection_kwargs)
        self.guard = guard
        self.read_deadline = read_deadline
        """Seconds a `read_snapshot` on a reader thread may run before SQLite interrupts it."""
        # The threads must not hold the engine (it would never be collected): they get a
        # function of the connection settings alone.
        connect = partial(_open_connection, dict(self.connection_kwargs))
        self.readers = ConnectionPool(connect, READERS, "apiclub-sqlite-reader")
        self._in_place = _InPlaceReaders(
            partial(_open_connection, {**self.connection_kwargs, "check_same_thread": False})
        )
        self.writer = GroupCommitWriter(
            connect, partial(_check_for_writes, guard), "apiclub-sqlite-writer"
        )
        # When the engine goes, or at exit: close() is the orderly way.
        weakref.finalize(self, _close, self._in_place, self.readers, self.writer, guard, 0.0)

    async def start(self) -> None:
        """Nothing to do: `create_sqlite_engine` prepared the file, connections open on use."""

    async def stop(self) -> None:
        """`close()`, off the event loop: it waits for the writer thread's last commit."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Commit the writes already queued, then close every connection and the guard's."""
        wait = float(self.connection_kwargs.get("timeout", 5.0)) + CLOSE_WAIT_MARGIN
        _close(self._in_place, self.readers, self.writer, self.guard, wait)

    async def write(self, query: Query[Any, Any]) -> list[Row]:
        """Run `query` (one INSERT, UPDATE or DELETE) in the next group commit; its rows.

        Inside a transaction (`write_transaction()`), the write is part of it instead. The rows
        are what the statement returned (`.returning(...)`), as Piccolo's plain
        `await query` gives them for these queries, which need no post-processing.
        """
        if self.current_transaction.get() is not None:
            rows: list[Row] = await query  # part of the caller's transaction, as asked
            return rows
        return await self.writer.write(*self._compile(query))

    async def read_snapshot(
        self, *queries: Query[Any, Any], bounded: bool = False
    ) -> list[list[Row]]:
        """The rows of each of `queries`, all read from one snapshot; as the statements return them.

        A page and its total must agree; a transaction of Piccolo's would take four trips to
        a reader's thread (BEGIN, two queries, COMMIT), so the statements go in one trip.

        `bounded` says that no query's cost grows with the table (a primary-key lookup, a page
        near the start, the maintained count): then they run right here, on the event loop's
        own connection. A hand-off to a thread and back costs more than such a read (and the
        threads' contention for the GIL added CPU to every `GET /task/`: docs/performance.md),
        and in WAL mode a reader takes no lock that waits for a writer. The rare busy answer (a WAL
        recovery) is not waited for here: the read then goes to a thread like any other.
        """
        statements = [self._compile(query) for query in queries]
        # Unless the file changed: the guard's report (and its copy of the file) happen in a
        # thread, never on the event loop.
        if bounded and self.guard.unchanged():
            try:
                return _read_together(self._in_place.connection(), statements)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
        async with self.readers.connection() as connection:
            return await connection.call(
                partial(self._checked_read_together, statements=statements)
            )

    async def run_querystring(self, querystring: QueryString, in_pool: bool = False) -> list[Row]:
        sql, args = querystring.compile_string(engine_type=self.engine_type)
        return await self._run(sql, args)

    async def run_ddl(self, ddl: str, in_pool: bool = False) -> list[Row]:
        return await self._run(ddl, [])

    def transaction(
        self,
        transaction_type: TransactionType = TransactionType.deferred,
        allow_nested: bool = True,
    ) -> SQLiteTransaction:
        return _PooledTransaction(self, transaction_type, allow_nested)

    async def _run(self, sql: str, args: list[Any]) -> list[Row]:
        job = partial(self._checked_fetch, sql=sql, args=args)
        transaction = self.current_transaction.get()
        if isinstance(transaction, _PooledTransaction):
            return await transaction.connection.call(job)
        async with self.readers.connection() as connection:
            return await connection.call(job)

    def _compile(self, query: Query[Any, Any]) -> tuple[str, list[Any]]:
        (querystring,) = query.querystrings
        sql, args = querystring.compile_string(engine_type=self.engine_type)
        return sql, args

    def _checked_read_together(
        self, connection: sqlite3.Connection, statements: list[tuple[str, list[Any]]]
    ) -> list[list[Row]]:
        self.guard.check()
        with read_deadline(connection, self.read_deadline):
            return _read_together(connection, statements)

    def _checked_fetch(
        self, connection: sqlite3.Connection, sql: str, args: list[Any]
    ) -> list[Row]:
        self.guard.check()
        return fetch(connection, sql, args)


def _read_together(
    connection: sqlite3.Connection, statements: list[tuple[str, list[Any]]]
) -> list[list[Row]]:
    """Run `statements` in one read transaction: their rows from one snapshot."""
    if len(statements) == 1:  # one statement reads one snapshot by itself
        ((sql, args),) = statements
        return [fetch(connection, sql, args)]
    connection.execute("BEGIN")
    try:
        rows = [fetch(connection, sql, args) for sql, args in statements]
    except BaseException:
        if connection.in_transaction:  # SQLite may have ended it (SQLITE_IOERR, ...)
            connection.rollback()
        raise
    connection.execute("COMMIT")  # a read-only transaction: nothing to lose
    return rows


class _PooledTransaction(SQLiteTransaction):
    """Piccolo's transaction on a borrowed connection, given back (never closed) at its end."""

    engine: SQLiteDatabase
    connection: ConnectionThread

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        self.connection = await self.engine.readers.acquire()
        try:
            # Its queries check the file, in the connection's thread.
            await self.begin()  # type: ignore[no-untyped-call]
        except BaseException:
            self.connection.end_transaction()  # BEGIN may have run, if its caller was cancelled
            self.engine.readers.release(self.connection)
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent is not None:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()  # type: ignore[no-untyped-call]
            elif not self._committed and not self._rolled_back:
                await self.commit()  # type: ignore[no-untyped-call]
        finally:
            # A failed COMMIT or ROLLBACK leaves the transaction open: end it first.
            self.connection.end_transaction()
            self.engine.readers.release(self.connection)
            self.engine.current_transaction.reset(self.context)
        return exception is None


def _check_for_writes(guard: DatabaseGuard) -> None:
    guard.check()
    guard.check_writable()


def _open_connection(connection_kwargs: dict[str, Any]) -> sqlite3.Connection:
    # The engine's `connection_kwargs` carry the guarded factory, the busy timeout and
    # Piccolo's own settings (type detection, autocommit), as for its per-query connections.
    connection: sqlite3.Connection = sqlite3.connect(**connection_kwargs)
    connection.row_factory = dict_factory
    connection.execute("PRAGMA foreign_keys = 1")
    return connection


class _InPlaceReaders:
    """A reading connection per thread, used by that thread itself (`read_snapshot`'s bounded
    reads, from the event loop). It never waits for a lock: busy, it fails at once."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            connection.execute("PRAGMA busy_timeout = 0")
            with self._lock:
                self._opened.append(connection)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        # From any thread (check_same_thread=False), once nothing reads any more.
        with self._lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()


def _close(
    in_place: _InPlaceReaders,
    readers: ConnectionPool,
    writer: GroupCommitWriter,
    guard: DatabaseGuard,
    wait: float,
) -> None:
    writer.close(wait)
    readers.close()
    in_place.close()
    guard.close()
