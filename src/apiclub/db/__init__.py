"""Persistence: Piccolo tables, the two engines behind one interface, and the migration runner.

Knows nothing of HTTP or TLS; `apiclub.api` calls the query functions in `tasks`.

- `interface`: what apiclub asks of an engine (start, stop, "unavailable" errors, largest id).
- `sqlite/`: the default engine, one file. `postgres`: PostgreSQL (`APICLUB_DATABASE_URL`).
- `lifecycle`: chooses the engine from the settings, opens, migrates and closes it.
- `binding`: points Piccolo at the engine; `bound_engine`, `write_transaction`.
- `tables`, `tasks`, `search`: the table, its queries, and their engine-specific SQL.
- `migrate`, `pending`, `piccolo_app`, `piccolo_conf`: migrations and Piccolo's configuration.
"""

from __future__ import annotations

from apiclub.db.binding import Database, bind_engine, bound_engine, write_transaction
from apiclub.db.interface import Engine, Unavailable
from apiclub.db.lifecycle import (
    close_database,
    engine_class,
    migrate_database,
    open_database,
)
from apiclub.db.migrate import default_lock_path, migrate
from apiclub.db.postgres import UNAVAILABLE_ERRORS, Postgres, unavailable_reason
from apiclub.db.sqlite import DatabaseFileError, SQLiteDatabase, create_sqlite_engine

__all__ = [
    "UNAVAILABLE_ERRORS",
    "Database",
    "DatabaseFileError",
    "Engine",
    "Postgres",
    "SQLiteDatabase",
    "Unavailable",
    "bind_engine",
    "bound_engine",
    "close_database",
    "create_sqlite_engine",
    "default_lock_path",
    "engine_class",
    "migrate",
    "migrate_database",
    "open_database",
    "unavailable_reason",
    "write_transaction",
]
