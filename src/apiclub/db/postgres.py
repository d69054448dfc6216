"""The PostgreSQL engine: Piccolo's `PostgresEngine` on an asyncpg pool that never hangs.

Chosen when `APICLUB_DATABASE_URL` is set. Every wait is bounded: connecting (`CONNECT_TIMEOUT`),
each statement (`COMMAND_TIMEOUT`, asyncpg cancels it on the server), and waiting for a pool
connection (`ACQUIRE_TIMEOUT`). Piccolo's engine is adjusted in three places:

- Its constructor connects synchronously to check the server version and only warns when that
  fails; here nothing connects until `start()`, which retries for `START_RETRY_FOR`.
- Its transaction leaks the pool connection when BEGIN or ROLLBACK fails (a dead connection):
  after `POOL_MAX_SIZE` such failures every request would wait for a connection forever.
- Its pool waits without a timeout for a free connection.

A dead connection is dropped by asyncpg and the next request opens a new one, so the server
coming back needs no restart. Texts of asyncpg errors pass through `scrub` before they are
logged, so the password in the URL cannot reach a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]
from asyncpg import exceptions as pg
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.query.base import Query
from piccolo.querystring import QueryString

from apiclub.backoff import Backoff
from apiclub.db.interface import Unavailable
from apiclub.errors import StorageError
from apiclub.settings import redact_url
from apiclub.units import SECONDS

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5 * SECONDS
"""Opening one connection, TLS and authentication included."""
COMMAND_TIMEOUT = 10 * SECONDS
"""One statement; past it asyncpg cancels the query and the request answers 503."""
ACQUIRE_TIMEOUT = 10 * SECONDS
"""Waiting for a free pool connection (all `POOL_MAX_SIZE` busy), connecting included."""
CLOSE_TIMEOUT = 5 * SECONDS
"""Closing the pool at shutdown; connections still busy after it are cut."""
POOL_MIN_SIZE = 0
"""Connections kept open while idle. Not 1: asyncpg would then reopen it in the background
during an outage, logging a traceback at every try; requests reconnect on demand instead."""
POOL_MAX_SIZE = 10
"""Connections per process. N replicas use up to N * 10 of the server's `max_connections`
(100 by default): raise it, or lower this, beyond about 8 replicas."""
START_RETRY_FOR = 30 * SECONDS
"""How long start-up keeps retrying a database that cannot be reached (a container starting)."""
FIRST_RETRY_DELAY = 0.5 * SECONDS
MAX_RETRY_DELAY = 5 * SECONDS

# Errors that mean "the database cannot serve right now", not "this request is wrong": waiting or
# an operator fixes them (PostgreSQL error classes, https://www.postgresql.org/docs/current/errcodes-appendix.html).
_UNAVAILABLE: tuple[tuple[type[BaseException], str], ...] = (
    (pg.PostgresConnectionError, "the database connection failed"),  # class 08
    # 57014, also `READ_DEADLINE`'s statement_timeout
    (pg.QueryCanceledError, "the query took too long and was stopped"),
    (pg.OperatorInterventionError, "the database is shutting down or starting up"),  # class 57
    (pg.InsufficientResourcesError, "the database is out of connections, memory or disk"),
    (pg.InvalidAuthorizationSpecificationError, "the database refused apiclub's credentials"),
    (pg.InvalidCatalogNameError, "the database does not exist"),  # 3D000
    (pg.ReadOnlySQLTransactionError, "the database is read-only"),  # 25006, e.g. a standby
    (pg.TransactionRollbackError, "the database aborted a conflicting transaction"),  # class 40
    (TimeoutError, "the database did not answer in time"),
    (OSError, "the database cannot be reached"),
)
_TRANSIENT_AT_START = (
    pg.PostgresConnectionError,
    pg.CannotConnectNowError,  # 57P03: the server is starting up
    pg.TooManyConnectionsError,
    OSError,  # refused, unreachable, timed out (TimeoutError is an OSError)
)

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (pg.PostgresError, pg.InterfaceError, OSError)
"""The exception types `unavailable_reason` may classify (for exception handler tables)."""
MAX_SERIAL = 2**31 - 1
"""The largest task id: the `id` column is `serial` (a 32-bit `integer`, as Piccolo's `Serial`
creates it in the first migration); a larger one would fail as a query parameter."""


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot serve now, for a 503; None when `exc` is a bug, not an outage."""
    if isinstance(exc, pg.InterfaceError):
        # asyncpg says "connection is closed" when a dropped connection is used again.
        return "the database connection was closed" if "closed" in str(exc) else None
    return next((reason for kind, reason in _UNAVAILABLE if isinstance(exc, kind)), None)


READ_DEADLINE = 2 * SECONDS
"""How long one statement of an unbounded read (a filtered list) may run: the server stops it
(`statement_timeout`), so a pathological read never holds a pool connection for seconds."""
DEADLINE_SQL = "SET LOCAL statement_timeout = {}"
"""In milliseconds; LOCAL ends with the read's transaction, so migrations keep no limit."""

SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
"""PostgreSQL: one snapshot for the whole list read. Under its default READ COMMITTED each
statement takes its own snapshot, so a task committed between the page and the count would make
them disagree; SQLite's read transaction already reads one snapshot (WAL). It must be the first
statement of the transaction (https://www.postgresql.org/docs/current/sql-set-transaction.html),
and a read-only transaction never waits for a lock nor fails a serialization check."""


class Postgres(PostgresEngine):
    """Piccolo's PostgreSQL engine for one URL, with the bounded pool described above.

    Create it anywhere (it does not connect); `await start()` opens the pool, `await close()`
    closes it. Without a pool (Piccolo's own CLI) each query opens a connection of its own.
    """

    __slots__ = ("label", "read_deadline", "url")

    max_task_id: ClassVar[int] = MAX_SERIAL
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = UNAVAILABLE_ERRORS

    @staticmethod
    def unavailable(exc: BaseException) -> Unavailable | None:
        """`unavailable_reason` as `interface.Unavailable`: every PostgreSQL outage counts as
        "unavailable" (a lock wait past `COMMAND_TIMEOUT` is a cancelled query, not "busy")."""
        reason = unavailable_reason(exc)
        return None if reason is None else Unavailable(reason)

    def __init__(
        self,
        url: str,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        read_deadline: float = READ_DEADLINE,
    ) -> None:
        self.url = url
        self.read_deadline = read_deadline
        self.label = redact_url(url)
        config = {
            "dsn": url,
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": command_timeout,
            "server_settings": {"application_name": "apiclub"},
        }
        super().__init__(config=config)

    @property
    def address(self) -> str:
        """`host:port` of the server, as an operator would check it."""
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{host}:{parts.port or 5432}"

    async def check_version(self) -> None:
        """Nothing at construction: `start()` connects, with retries and clear errors."""

    async def prep_database(self) -> None:
        """No extensions at construction; migrations create what they need."""

    async def start(self, retry_for: float = START_RETRY_FOR) -> None:
        """Open the pool, retrying with backoff while the server cannot be reached.

        Raises:
            StorageError: not reachable within `retry_for` seconds, or it refused us (a wrong
                password or database name is not retried); the message names host:port.
        """
        deadline = time.monotonic() + retry_for
        backoff = Backoff(FIRST_RETRY_DELAY, MAX_RETRY_DELAY)
        while True:
            try:
                await self._open_pool()
                return
            except _TRANSIENT_AT_START as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._start_error(exc, f"not reachable for {retry_for:g} s") from None
                delay = min(backoff.fail(), left)
                logger.warning(
                    "database %s not reachable (attempt %d): %s; retrying in %.1f s",
                    self.label,
                    backoff.failures,
                    self.scrub(exc),
                    delay,
                )
            except (pg.PostgresError, pg.InterfaceError) as exc:
                raise self._start_error(exc, "refused the connection") from None
            await asyncio.sleep(delay)

    async def _open_pool(self) -> None:
        pool = await asyncpg.create_pool(
            **self.config, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE
        )
        try:
            # The first connection proves the server answers (the pool itself opens none).
            await pool.fetchval("SELECT 1", timeout=COMMAND_TIMEOUT)
        except BaseException:
            pool.terminate()
            raise
        self.pool = pool

    async def stop(self) -> None:
        """`close()`: the same for both engines (`interface.Engine`)."""
        await self.close()

    async def close(self) -> None:
        """Close the pool, waiting `CLOSE_TIMEOUT` at most for busy connections."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except (TimeoutError, OSError, pg.PostgresError, pg.InterfaceError) as exc:
            logger.warning("database %s: pool closed abruptly: %s", self.label, self.scrub(exc))
            pool.terminate()

    def scrub(self, exc: BaseException | str) -> str:
        """The text of `exc` with this URL's password replaced by `***`."""
        text = str(exc) or type(exc).__name__
        parts = urlsplit(self.url)
        # In the user info or as a query parameter: libpq and asyncpg accept both.
        passwords = {parts.password or "", *parse_qs(parts.query).get("password", [])}
        for password in filter(None, passwords):
            for form in {password, unquote(password)}:
                text = text.replace(form, "***")
        return text

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        """A transaction on a pool connection that goes back to the pool whatever fails."""
        return _PoolTransaction(engine=self, allow_nested=allow_nested)

    async def read_snapshot(
        self, *queries: Query[Any, Any], bounded: bool = False
    ) -> list[list[dict[str, Any]]]:
        """The rows of each of `queries`, all read from one snapshot (as `SQLiteDatabase`'s).

        Several queries share one REPEATABLE READ, READ ONLY transaction (`SNAPSHOT_SQL`); one
        query reads one snapshot by itself. `bounded` matters to SQLite only: every read here
        goes through the pool alike, and an unbounded one runs under `READ_DEADLINE`.
        """
        if len(queries) == 1 and bounded:
            return [await queries[0]]
        async with self.transaction():
            await self.run_querystring(QueryString(SNAPSHOT_SQL))
            if not bounded:
                # SET takes no parameters: the integer is formatted in.
                milliseconds = max(1, int(self.read_deadline * 1000))
                await self.run_querystring(QueryString(DEADLINE_SQL.format(milliseconds)))
            rows: list[list[dict[str, Any]]] = [await query for query in queries]
        return rows

    async def write(self, query: Query[Any, Any]) -> list[dict[str, Any]]:
        """Run one write in a transaction of its own (as `SQLiteDatabase.write`); its rows.

        A plain READ COMMITTED transaction: each write is one statement whose row locks make
        concurrent writers to a row wait, and an UPDATE that waited re-reads the row's latest
        version, so no write is lost; the pool's connections write side by side.
        """
        async with self.transaction():
            rows: list[dict[str, Any]] = await query
        return rows

    async def _run_in_pool(self, query: str, args: Any = None) -> Any:
        if not self.pool:
            raise ValueError("A pool isn't currently running.")
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as connection:
            return await connection.fetch(query, *(args or []))

    def _start_error(self, exc: BaseException, what: str) -> StorageError:
        return StorageError(
            f"PostgreSQL at {self.address} {what} ({self.scrub(exc)}): start it there or fix "
            f"APICLUB_DATABASE_URL={self.label} (host, port, user, password, database)"
        )


class _PoolTransaction(PostgresTransaction):
    """Piccolo's transaction, giving its connection back to the pool even when the link died.

    Piccolo acquires in `__aenter__` and releases at the end of `__aexit__`; a failed BEGIN
    skips `__aexit__`, a failed ROLLBACK skips the release: either leaks a pool connection.
    """

    engine: Postgres

    async def get_connection(self) -> Any:
        if self.engine.pool is None:
            return await self.engine.get_new_connection()
        return await self.engine.pool.acquire(timeout=ACQUIRE_TIMEOUT)

    async def begin(self) -> None:
        try:
            await super().begin()  # type: ignore[no-untyped-call]
        except BaseException:
            await self._give_back()
            raise

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception is not None and not self._rolled_back:
                await self.rollback()  # type: ignore[no-untyped-call]
            elif exception is None and not self._committed and not self._rolled_back:
                await self.commit()  # type: ignore[no-untyped-call]
        except BaseException as failure:
            if exception is None:
                raise
            # The link is gone: the server rolls the transaction back itself. Keep the
            # original error (it says why) rather than the failed ROLLBACK's.
            logger.debug("rollback failed: %s", self.engine.scrub(failure))
        finally:
            await self._give_back()
            self.engine.current_transaction.reset(self.context)
        return exception is None

    async def _give_back(self) -> None:
        try:
            if self.engine.pool is not None:
                await self.engine.pool.release(self.connection)
            else:
                await self.connection.close()
        except Exception as failure:
            # asyncpg has already terminated the connection (and freed its pool slot).
            logger.debug("connection dropped: %s", self.engine.scrub(failure))
