"""Keep serving the database file that was opened at start, and only that one.

The engine's connections open on first use and may be closed again (a pool shut down, a
failed connect retried). Two things go wrong with that while serving:

- When the last connection closes, SQLite deletes the `-wal` and `-shm` files; the next
  reader must create them again, which fails on a full or read-only file system, so even
  reads would fail. One *keeper* connection held open for the engine's life keeps them.
- When the file is deleted (or replaced) under the running server, a new connection would
  create an empty database in its place and serve wrong answers (404 for existing tasks, ids
  reused), and an open one would go on writing to the deleted file. Connections open with
  `mode=rw` (never create), and every query and every write first checks that the path still
  names the file (device and inode) opened at start.

When the file is gone, the keeper still holds the old one open: its content is saved beside
it (`api.db.recovered-<time>`) so nothing is lost, and the operator is told once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from apiclub.errors import StorageError

logger = logging.getLogger("apiclub.db")

FileIdentity = tuple[int, int]


class DatabaseFileError(StorageError):
    """The database file was deleted or replaced under the running server."""

    detail = (
        "the database file is missing or was replaced while the server ran; an operator must "
        "restore it and restart the server"
    )
    """What a client is told (no paths: those go to the log)."""


class DatabaseGuard:
    """The keeper connection and the file identity check for one database file.

    `check()` is called before and after every new connection opens, and before every query
    run in a thread and every group of writes; it raises `DatabaseFileError` while the path
    does not name the file opened at start, and logs each change of that state once. Reads on
    the event loop call `unchanged()` instead, and go to a thread when it says no.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        self.uri = self.path.as_uri() + "?mode=rw"
        """Open the existing file read-write, never create it (SQLite URI `mode=rw`)."""
        self._identity = _identity(self.path)
        # check_same_thread=False: the copy is saved from whichever worker thread notices.
        self._keeper = sqlite3.connect(
            self.uri, uri=True, isolation_level=None, check_same_thread=False
        )
        # A read opens the WAL and its index; autocommit ends the read at once, so the
        # keeper never holds a snapshot that would stop checkpoints.
        self._keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()
        self._lock = threading.Lock()
        self._problem: str | None = None

    def check(self) -> None:
        """Raise `DatabaseFileError` unless the path still names the file opened at start."""
        problem = self._find_problem()
        if problem != self._problem:
            with self._lock:
                if problem != self._problem:
                    self._report(problem)
                    self._problem = problem
        if problem is not None:
            raise DatabaseFileError(f"{problem}; {DatabaseFileError.detail}")

    def unchanged(self) -> bool:
        """Whether the path names the file opened at start and no problem was reported: a
        `stat` and nothing more, for callers that must not block (`check` may copy the file)."""
        return self._problem is None and self._find_problem() is None

    def check_writable(self) -> None:
        """Raise SQLite's read-only error unless the path can be written now.

        The writer's connection stays open, and a file opened for writing can still be written
        after its directory turned read-only (a read-only mount over it, a remount): the
        operator made it read-only, so nothing more is written until it is writable again.
        `access(2)` answers through the path, mounts included, at the cost of one system call.
        """
        if not os.access(self.path, os.W_OK):
            error = sqlite3.OperationalError(
                f"attempt to write a readonly database: {self.path} is not writable"
            )
            error.sqlite_errorcode = sqlite3.SQLITE_READONLY
            raise error

    def close(self) -> None:
        """Close the keeper connection (SQLite then checkpoints and removes the WAL)."""
        with self._lock:
            self._keeper.close()

    def _find_problem(self) -> str | None:
        try:
            now = _identity(self.path)
        except FileNotFoundError:
            return f"database file {self.path} was deleted while serving"
        except OSError as exc:
            return f"database file {self.path} cannot be checked: {exc.strerror or exc}"
        if now != self._identity:
            return (
                f"database file {self.path} was replaced while serving "
                f"(inode {self._identity[1]}, now {now[1]})"
            )
        return None

    def _report(self, problem: str | None) -> None:
        if problem is None:
            logger.warning("database file %s is back: serving from it again", self.path)
            return
        saved = self._save_copy()
        logger.error(
            "%s: every request that needs the database answers 503. %s Stop apiclub, remove "
            "%s-wal and %s-shm if they are left, put the saved copy (or a backup) at %s and "
            "start apiclub again",
            problem,
            saved,
            self.path,
            self.path,
            self.path,
        )

    def _save_copy(self) -> str:
        """Save what the keeper still sees of the old file; say where, or why not."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.recovered-{stamp}")
        copy: sqlite3.Connection | None = None
        try:
            copy = sqlite3.connect(target)
            self._keeper.backup(copy)
        except sqlite3.Error as exc:
            if copy is not None:
                copy.close()
                copy = None
                with contextlib.suppress(OSError):
                    target.unlink(missing_ok=True)
            return (
                f"Its last content could not be saved to {target} ({exc}); free space there "
                "or keep apiclub running: it holds the old file open."
            )
        finally:
            if copy is not None:
                copy.close()
        return f"Its last content (every acknowledged write) is saved in {target}."


def _identity(path: Path) -> FileIdentity:
    info = path.stat()
    return (info.st_dev, info.st_ino)
