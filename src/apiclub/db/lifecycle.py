"""Which database a process uses, from its settings: the one place that chooses the engine.

`APICLUB_DATABASE_URL` unset: SQLite at `DB_FILE_PATH` (WAL, the guard, the file lock for
migrations). Set: PostgreSQL through a connection pool (`postgres`), the advisory lock for
migrations. Callers open, migrate and close without knowing which.
"""

from __future__ import annotations

import asyncio
import logging

from apiclub.db.binding import Database
from apiclub.db.interface import Engine
from apiclub.db.migrate import migrate
from apiclub.db.postgres import Postgres
from apiclub.db.sqlite import SQLiteDatabase, create_sqlite_engine
from apiclub.serving_lock import ServingLock, serving_lock_path
from apiclub.settings import Settings

logger = logging.getLogger(__name__)

_serving_locks: dict[int, ServingLock] = {}
"""The serving lock of each engine `open_database` opened, by `id(engine)`, until it closes."""


def engine_class(settings: Settings) -> type[Engine]:
    """The kind of engine `settings` name, known before it is opened (the API's routes and
    error handlers are built from its `max_task_id` and `unavailable_errors`)."""
    return Postgres if settings.database_url is not None else SQLiteDatabase


def choose_engine(settings: Settings) -> Database:
    """The engine `settings` name, not yet connected (PostgreSQL) or prepared (SQLite: see below).

    Raises:
        StorageError: the SQLite file or its directory is unusable (SQLite prepares it here).
    """
    if settings.database_url is not None:
        return Postgres(settings.database_url)
    # Replicated by Litestream: it owns the checkpoints (`sqlite.file`'s module docstring).
    return create_sqlite_engine(
        settings.database_path,
        busy_timeout=settings.db_busy_timeout,
        autocheckpoint=settings.replicate is None,
    )


async def open_database(settings: Settings) -> Database:
    """Open the database `settings` name and apply pending migrations; return its engine.

    PostgreSQL is retried for `postgres.START_RETRY_FOR` while it cannot be reached. The
    serving lock (`serving`) is held from here until `close_database`, so `apiclub restore`
    knows a server runs; while a restore holds it, this waits for the restore to finish.

    Raises:
        StorageError: the database cannot be opened or reached (the message says how to fix it).
        MigrationError: a migration failed.
    """
    lock = await asyncio.to_thread(ServingLock, serving_lock_path(settings))
    try:
        engine = await _start_engine(settings)
    except BaseException:
        lock.release()
        raise
    _serving_locks[id(engine)] = lock
    try:
        applied = await migrate(engine)
    except BaseException:
        await close_database(engine)
        raise
    logger.info("database %s ready, %d migration(s) applied", settings.database_label, len(applied))
    return engine


async def close_database(engine: Database) -> None:
    """Close PostgreSQL's pool, or commit SQLite's queued writes and close its connections."""
    try:
        await engine.stop()  # SQLite: waits for the writer thread's last commit
    finally:
        if (lock := _serving_locks.pop(id(engine), None)) is not None:
            lock.release()


async def migrate_database(settings: Settings) -> list[str]:
    """Apply pending migrations to the database `settings` name; return the ids applied."""
    engine = await _start_engine(settings)
    try:
        return await migrate(engine)
    finally:
        await close_database(engine)


async def _start_engine(settings: Settings) -> Database:
    # SQLite's create_sqlite_engine touches the file (WAL, a write-lock probe): off the loop.
    engine = await asyncio.to_thread(choose_engine, settings)
    await engine.start()  # PostgreSQL: opens the pool, retrying
    return engine
