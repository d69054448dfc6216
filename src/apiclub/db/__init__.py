"""Persistence: Piccolo tables, the SQLite engine set-up and the migration runner.

Knows nothing of HTTP or TLS; `apiclub.api` calls the query functions in `tasks`.
"""

from __future__ import annotations

from apiclub.db.engine import bind_engine, bound_engine, create_engine, write_transaction
from apiclub.db.guard import DatabaseFileError
from apiclub.db.migrate import default_lock_path, migrate

__all__ = [
    "DatabaseFileError",
    "bind_engine",
    "bound_engine",
    "create_engine",
    "default_lock_path",
    "migrate",
    "write_transaction",
]
