"""Apply pending Piccolo migrations, once, even when several processes start together.

Piccolo's `run_forwards` has no lock between processes, prints to stdout, reports failure as a
return value without naming the migration, and records a migration in its `migration` table
outside the transaction that applied it. This runner keeps Piccolo's bookkeeping (so
`piccolo migrations forwards all` agrees with it) but serialises runners with an exclusive
`flock`, applies each migration and its bookkeeping row in one IMMEDIATE transaction, and turns
a failure into a `MigrationError` naming the migration and the cause.
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

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from apiclub.db.engine import bind_engine, bound_engine
from apiclub.errors import MigrationError, StorageError

logger = logging.getLogger(__name__)

SECONDS = 1.0
LOCK_POLL_INTERVAL = 0.05 * SECONDS
"""How often a waiting runner retries the migration lock."""


def default_lock_path(database_path: Path) -> Path:
    """The lock file guarding migrations of `database_path`: `<file>.migrate.lock` beside it."""
    return database_path.with_name(database_path.name + ".migrate.lock")


async def migrate(engine: SQLiteEngine, lock_path: Path | None = None) -> list[str]:
    """Bind `engine` and apply every pending migration; return the ids applied, in order.

    `lock_path` defaults to `default_lock_path` of the database file. It must not be the
    database itself: closing another descriptor of that file would drop SQLite's own locks.

    Raises:
        MigrationError: a migration failed; the database is left as before that migration.
        StorageError: the lock file cannot be created.
    """
    database_path = Path(engine.path)
    if lock_path is None:
        lock_path = default_lock_path(database_path)
    elif lock_path.resolve() == database_path.resolve():
        raise ValueError(f"the migration lock must not be the database file {lock_path}")
    bind_engine(engine)
    async with _exclusive_lock(lock_path):
        manager = BaseMigrationManager()
        try:
            await manager.create_migration_table()
        except Exception as exc:
            raise MigrationError(
                f"cannot create Piccolo's migration table in {engine.path}: {exc}; "
                "check the database file or restore it from a backup"
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
    engine = bound_engine()
    # MigrationManager.run opens its own (deferred) transaction; inside ours it nests, so the
    # schema change and its bookkeeping row commit or roll back together.
    async with engine.transaction(transaction_type=TransactionType.immediate):
        manager = await forwards()
        if isinstance(manager, MigrationManager):
            output = io.StringIO()
            with contextlib.redirect_stdout(output):  # Piccolo prints progress to stdout
                await manager.run()
            logger.debug("piccolo: %s", output.getvalue().strip())
        await Migration.insert(Migration(name=migration_id, app_name=app_name))


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
