"""The SQLite file: created private, switched to WAL, probed writable; its engine built on it.

Piccolo's `SQLiteEngine` does not enable WAL, so the file is switched to WAL once here (the
mode persists in the file), and every connection gets a busy timeout (`APICLUB_DB_BUSY_TIMEOUT`):
another process's writer (`--workers`, `apiclub migrate`) is waited for instead of failing at
once with "database is locked" (all but the event loop's own reader, which must not block:
`engine`). Which connection runs what (a few long-lived readers, one group-committing writer) is
`engine`'s job. Every connection also sets `synchronous=FULL` (SQLite's usual default,
but builds may lower it): in WAL mode FULL keeps acknowledged commits across a process crash
*and* a power loss, where NORMAL survives only the former; it costs one fsync per commit.
Connections open only the file opened at start, through a `DatabaseGuard` (see `guard`).

When Litestream replicates the file (`APICLUB_REPLICATE`), it must own checkpoints: it copies
WAL frames before they are checkpointed into the main file, and an application checkpoint
racing it forces a new snapshot (Litestream's "tips": disable autocheckpoints). Every
connection then sets `wal_autocheckpoint=0` (`create_sqlite_engine(..., autocheckpoint=False)`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from apiclub.db.sqlite.engine import SQLiteDatabase
from apiclub.db.sqlite.guard import DatabaseGuard
from apiclub.errors import StorageError
from apiclub.units import SECONDS

BUSY_TIMEOUT = 30 * SECONDS
"""How long a query waits for another connection's write lock before giving up, unless the
caller says otherwise (`Settings.db_busy_timeout`)."""
BUSY_RETRY_INTERVAL = 0.05 * SECONDS


class _DurableConnection(sqlite3.Connection):
    """A connection that syncs every commit to disk (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=FULL")


def _guarded_factory(guard: DatabaseGuard, autocheckpoint: bool) -> type[sqlite3.Connection]:
    """A connection class that opens `guard`'s file only, and only while it is still there."""

    class GuardedConnection(_DurableConnection):
        def __init__(self, database: object, *args: Any, **kwargs: Any) -> None:
            guard.check()
            super().__init__(guard.uri, *args, **{**kwargs, "uri": True})
            try:
                guard.check()  # the file may have gone between the check and the open
                if not autocheckpoint:
                    self.execute("PRAGMA wal_autocheckpoint=0")  # Litestream checkpoints
            except BaseException:
                self.close()
                raise

    return GuardedConnection


def create_sqlite_engine(
    path: Path, *, busy_timeout: float = BUSY_TIMEOUT, autocheckpoint: bool = True
) -> SQLiteDatabase:
    """Prepare the SQLite file at `path` (WAL, writable) and return a Piccolo engine for it.

    `autocheckpoint=False` leaves checkpoints to another process (Litestream; module docstring).

    The engine keeps its connections open for its life (`close()`, or when it is garbage
    collected, or at exit), and refuses to use a file other than the one prepared here.

    Raises:
        StorageError: the directory or file cannot be created, opened or written.
    """
    try:
        _make_private_dirs(path.parent)
    except OSError as exc:
        raise StorageError(
            f"cannot create the database directory {path.parent}: {exc.strerror or exc}; "
            "make it a writable directory or set DB_FILE_PATH / APICLUB_DATA_DIR elsewhere"
        ) from None
    try:
        _make_private_files(path)
    except OSError as exc:
        raise StorageError(
            f"cannot create the database file {path}: {exc.strerror or exc}; "
            "make its directory writable or set DB_FILE_PATH elsewhere"
        ) from None
    try:
        _prepare_file(path, busy_timeout)
        guard = DatabaseGuard(path)
    except sqlite3.Error as exc:
        raise StorageError(
            f"cannot use the database file {path}: {exc}; check that it is a SQLite file on a "
            "writable file system with free space, or set DB_FILE_PATH elsewhere"
        ) from None
    # These keyword arguments go to sqlite3.connect for each new connection.
    factory = _guarded_factory(guard, autocheckpoint)
    return SQLiteDatabase(guard, timeout=busy_timeout, factory=factory)


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents 0700 whatever the umask (they hold the
    tasks; the umask can only take bits away from 0700)."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            created.mkdir(mode=PRIVATE_DIR_MODE)


def _make_private_files(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 under umask 022,
    and gives its -wal and -shm files the main file's mode), and take group and other
    access away from files of ours left more open by older versions."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            info = file.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                file.chmod(PRIVATE_FILE_MODE)


def _prepare_file(path: Path, busy_timeout: float) -> None:
    """Switch the file to WAL and probe the write lock, retrying while another process does.

    Changing the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
    there (the busy handler is not consulted) when a second process is preparing the same new
    file: two processes starting together must wait for each other, not fail.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            _try_prepare_file(path, busy_timeout)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(BUSY_RETRY_INTERVAL)
        else:
            return


def _try_prepare_file(path: Path, busy_timeout: float) -> None:
    connection = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, factory=_DurableConnection
    )
    with closing(connection) as conn:
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal mode is {mode!r}, WAL could not be enabled")
        # Takes the write lock and rolls back: proves the file is writable before we serve.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
