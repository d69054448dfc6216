"""Persistence: Piccolo tables, the engine (SQLite or PostgreSQL) and the migration runner.

Knows nothing of HTTP or TLS; `apiclub.api` calls the query functions in `tasks`.
"""

from __future__ import annotations

from apiclub.db.database import close_database, migrate_database, open_database
from apiclub.db.engine import (
    Database,
    bind_engine,
    bound_engine,
    create_engine,
    write_transaction,
)
from apiclub.db.guard import DatabaseFileError
from apiclub.db.migrate import default_lock_path, migrate
from apiclub.db.postgres import UNAVAILABLE_ERRORS, Postgres, unavailable_reason

__all__ = [
    "UNAVAILABLE_ERRORS",
    "Database",
    "DatabaseFileError",
    "Postgres",
    "bind_engine",
    "bound_engine",
    "close_database",
    "create_engine",
    "default_lock_path",
    "migrate",
    "migrate_database",
    "open_database",
    "unavailable_reason",
    "write_transaction",
]
