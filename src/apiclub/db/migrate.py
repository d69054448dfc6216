"""Apply pending Piccolo migrations, once, even when several processes start together.

Piccolo's `run_forwards` has no lock between processes, prints to stdout, reports failure as a
return value without naming the migration, and records a migration in its `migration` table
outside the transaction that applied it. This runner keeps Piccolo's bookkeeping (so
`piccolo migrations forwards all` agrees with it) but serialises runners with a lock, applies
each migration and its bookkeeping row in one write transaction, and turns a failure into a
`MigrationError` naming the migration and the cause.

The lock: on SQLite an exclusive `flock` on a file beside the database; on PostgreSQL a
session-level advisory lock held by one connection of its own over the whole run, so replicas
starting together migrate once, and a runner that dies releases it with its connection.

Under the lock, `pending.pending_migrations` first answers "nothing pending" with one query;
Piccolo's migration machinery (and `black`, which it imports) is loaded only otherwise
(issue #5: it was a quarter of a cold start).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from piccolo.apps.migrations.tables import Migration

from apiclub.db.binding import Database, bind_engine, write_transaction
from apiclub.db.pending import pending_migrations
from apiclub.db.postgres import Postgres
from apiclub.errors import MigrationError, StorageError
from apiclub.units import SECONDS

if TYPE_CHECKING:
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

logger = logging.getLogger(__name__)

LOCK_POLL_INTERVAL = 0.05 * SECONDS
"""How often a waiting runner retries the migration lock."""
ADVISORY_LOCK_KEY = (
    0x61706963_6C756230  # "apiclub0": any constant bigint, the same in every replica
)
"""The PostgreSQL advisory lock (a 64-bit key) that serialises migration runners."""


def default_lock_path(database_path: Path) -> Path:
    """The lock file guarding migrations of `database_path`: `<file>.migrate.lock` beside it."""
    return database_path.with_name(database_path.name + ".migrate.lock")


async def migrate(engine: Database, lock_path: Path | None = None) -> list[str]:
    """Bind `engine` and apply every pending migration; return the ids applied, in order.

    SQLite: `lock_path` defaults to `default_lock_path` of the database file. It must not be
    the database itself: closing another descriptor of that file would drop SQLite's own
    locks. PostgreSQL: the advisory lock `ADVISORY_LOCK_KEY`; `lock_path` must be None.

    Raises:
        MigrationError: a migration failed; the database is left as before that migration.
        StorageError: the lock file cannot be created, or PostgreSQL cannot be reached.
    """
    lock = _lock_for(engine, lock_path)
    bind_engine(engine)
    async with lock:
        if await pending_migrations() == []:
            return []
        # Only now: importing Piccolo's machinery is a large part of a cold start (`pending`).
        from piccolo.apps.migrations.commands.base import BaseMigrationManager

        manager = BaseMigrationManager()
        try:
            await manager.create_migration_table()
        except Exception as exc:
            where = engine.label if isinstance(engine, Postgres) else engine.path
            raise MigrationError(
                f"cannot create Piccolo's migration table in {where}: {_text(engine, exc)}; "
                "check the database or restore it from a backup"
            ) from exc
        applied: list[str] = []
        for app_name in manager.get_sorted_app_names():
            applied += await _migrate_app(manager, app_name)
    return applied


async def _migrate_app(manager: BaseMigrationManager, app_name: str) -> list[str]:
    folder = manager.get_app_config(app_name=app_name).resolved_migrations_folder_path
    try:
        modules = manager.get_migration_modules(folder)
    except Exception as exc:
        raise MigrationError(
            f"cannot load the migrations of {app_name} from {folder}: {exc}; fix or remove the "
            "broken migration file"
        ) from exc
    already_ran = set(await Migration.get_migrations_which_ran(app_name=app_name))
    pending = [mid for mid in manager.get_migration_ids(modules) if mid not in already_ran]
    for migration_id in pending:
        try:
            await _apply(app_name, migration_id, modules[migration_id].forwards)
        except Exception as exc:
            raise MigrationError(
                f"migration {migration_id} of {app_name} failed: {exc}; "
                "fix the migration or restore the database"
            ) from exc
        logger.info("applied migration %s of %s", migration_id, app_name)
    return pending


async def _apply(
    app_name: str, migration_id: str, forwards: Callable[[], Awaitable[object]]
) -> None:
    from piccolo.apps.migrations.auto.migration_manager import MigrationManager

    # MigrationManager.run opens its own transaction; inside ours it nests, so the schema
    # change and its bookkeeping row commit or roll back together.
    async with write_transaction():
        manager = await forwards()
        if isinstance(manager, MigrationManager):
            output = io.StringIO()
            with contextlib.redirect_stdout(output):  # Piccolo prints progress to stdout
                await manager.run()
            logger.debug("piccolo: %s", output.getvalue().strip())
        await Migration.insert(Migration(name=migration_id, app_name=app_name))


def _lock_for(
    engine: Database, lock_path: Path | None
) -> contextlib.AbstractAsyncContextManager[None]:
    if isinstance(engine, Postgres):
        if lock_path is not None:
            raise ValueError("PostgreSQL migrations lock with an advisory lock, not a file")
        return _advisory_lock(engine)
    database_path = Path(engine.path)
    if lock_path is None:
        lock_path = default_lock_path(database_path)
    elif lock_path.resolve() == database_path.resolve():
        raise ValueError(f"the migration lock must not be the database file {lock_path}")
    return _exclusive_lock(lock_path)


def _text(engine: Database, exc: BaseException) -> str:
    return engine.scrub(exc) if isinstance(engine, Postgres) else str(exc)


@contextlib.asynccontextmanager
async def _advisory_lock(engine: Postgres) -> AsyncIterator[None]:
    try:
        connection = await engine.get_new_connection()
    except Exception as exc:
        raise StorageError(
            f"cannot connect to {engine.label} at {engine.address} to lock migrations: "
            f"{engine.scrub(exc)}; check that PostgreSQL runs there"
        ) from None
    try:
        # pg_try_advisory_lock in a loop rather than a blocking pg_advisory_lock: the wait
        # (another replica migrating) may outlast the command timeout, and a cancelled start-up
        # must not leave a lock request queued on the server.
        while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
            await asyncio.sleep(LOCK_POLL_INTERVAL)
        yield
    finally:
        # Closing the session releases its advisory locks (unlock first would add nothing).
        await connection.close()


@contextlib.asynccontextmanager
async def _exclusive_lock(lock_path: Path) -> AsyncIterator[None]:
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot create the migration lock {lock_path}: {exc.strerror or exc}; "
            "make its directory writable"
        ) from None
    try:
        # Non-blocking attempts with a pause between them, instead of a blocking flock in a
        # thread: a cancelled start-up (SIGTERM) then leaves no thread holding the lock.
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(LOCK_POLL_INTERVAL)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
