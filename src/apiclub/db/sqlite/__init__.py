"""The SQLite engine, apiclub's default: one file, a few readers and one group-committing writer.

- `file`: the file created private, switched to WAL, probed writable; `create_sqlite_engine`.
- `engine`: `SQLiteDatabase`, Piccolo's engine on long-lived connections; which SQLite errors
  mean "unavailable"; the largest task id.
- `threads`: the connections, each in a thread of its own. `group_commit`: the writer.
- `guard`: only the file opened at start is served. `deadline`: a time limit on one read.
"""

from __future__ import annotations

from apiclub.db.sqlite.engine import SQLiteDatabase
from apiclub.db.sqlite.file import BUSY_TIMEOUT, create_sqlite_engine
from apiclub.db.sqlite.guard import DatabaseFileError, DatabaseGuard

__all__ = [
    "BUSY_TIMEOUT",
    "DatabaseFileError",
    "DatabaseGuard",
    "SQLiteDatabase",
    "create_sqlite_engine",
]
