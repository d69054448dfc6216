"""Which database a process uses, from its settings: the one place that chooses the engine.

`APICLUB_DATABASE_URL` unset: SQLite at `DB_FILE_PATH` (WAL, the guard, the file lock for
migrations). Set: PostgreSQL through a connection pool (`postgres`), the advisory lock for
migrations. Callers open, migrate and close without knowing which.
"""

from __future__ import annotations

import asyncio
import logging

from apiclub.db.engine import Database, create_engine
from apiclub.db.migrate import migrate
from apiclub.db.postgres import Postgres
from apiclub.settings import Settings

logger = logging.getLogger(__name__)


def choose_engine(settings: Settings) -> Database:
    """The engine `settings` name, not yet connected (PostgreSQL) or prepared (SQLite: see below).

    Raises:
        StorageError: the SQLite file or its directory is unusable (SQLite prepares it here).
    """
    if settings.database_url is not None:
        return Postgres(settings.database_url)
    return create_engine(settings.database_path)


async def open_database(settings: Settings) -> Database:
    """Open the database `settings` name and apply pending migrations; return its engine.

    PostgreSQL is retried for `postgres.START_RETRY_FOR` while it cannot be reached.

    Raises:
        StorageError: the database cannot be opened or reached (the message says how to fix it).
        MigrationError: a migration failed.
    """
    engine = await _start_engine(settings)
    try:
        applied = await migrate(engine)
    except BaseException:
        await close_database(engine)
        raise
    logger.info("database %s ready, %d migration(s) applied", settings.database_label, len(applied))
    return engine


async def close_database(engine: Database) -> None:
    """Close PostgreSQL's pool, or commit SQLite's queued writes and close its connections."""
    if isinstance(engine, Postgres):
        await engine.close()
    else:
        await asyncio.to_thread(engine.close)  # waits for the writer thread's last commit


async def migrate_database(settings: Settings) -> list[str]:
    """Apply pending migrations to the database `settings` name; return the ids applied."""
    engine = await _start_engine(settings)
    try:
        return await migrate(engine)
    finally:
        await close_database(engine)


async def _start_engine(settings: Settings) -> Database:
    # SQLite's create_engine touches the file (WAL, a write-lock probe): off the event loop.
    engine = await asyncio.to_thread(choose_engine, settings)
    if isinstance(engine, Postgres):
        await engine.start()
    return engine
