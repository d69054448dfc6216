"""A consistent copy of a live SQLite database through SQLite's online backup API.

The copy is of one instant: the source connection opens a read transaction first and holds it
for the whole copy, so every step reads the same snapshot. Without it, SQLite restarts a
stepwise backup whenever another connection writes, and under a steady write load it might
never finish. In WAL mode the held read blocks no writer (it only keeps checkpoints from
passing it until the copy ends). Every commit acknowledged before the read began is in the copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apiclub.errors import BackupError

STEP_PAGES = 4096
"""Pages copied per step (16 MiB at the default 4 KiB page): the progress granularity."""
BUSY_TIMEOUT = 30.0

Progress = Callable[[str, int, int], None]
"""Called as `(phase, done, total)`: pages of the database, then bytes of the archive."""


def copy_database(source: Path, target: Path, progress: Progress | None = None) -> datetime:
    """Copy the live database `source` into the new file `target` (mode 0600); return the
    instant of the copy. The copy is made self-contained (rollback journal, no `-wal`).

    Raises:
        BackupError: the source cannot be read, or the copy cannot be written.
    """
    if not source.is_file():
        raise BackupError(
            f"no database at {source}: nothing to back up (check APICLUB_DATA_DIR/DB_FILE_PATH)"
        )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        # mode=rw: never create a database where there is none.
        src = sqlite3.connect(
            source.absolute().as_uri() + "?mode=rw",
            uri=True,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,
        )
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"cannot open {source} or {target}: {exc}") from None
    with contextlib.closing(src):
        try:
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchall()  # the snapshot starts
            taken = datetime.now(UTC)
            dst = sqlite3.connect(target, isolation_level=None)
            with contextlib.closing(dst):

                def step(_status: int, remaining: int, total: int) -> None:
                    if progress is not None:
                        progress("database", total - remaining, total)

                src.backup(dst, pages=STEP_PAGES, progress=step)
                (mode,) = dst.execute("PRAGMA journal_mode=DELETE").fetchone()
                if str(mode).lower() != "delete":
                    raise sqlite3.OperationalError(f"the copy stayed in journal mode {mode}")
            src.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackupError(
                f"copying {source} to {target} failed: {exc}; check free space at {target.parent}"
            ) from None
    return taken


def check_database(path: Path) -> tuple[list[str], int | None]:
    """Run `PRAGMA integrity_check` on a copy; return its applied migrations and task count.

    Raises:
        BackupError: the copy is not a sound SQLite database.
    """
    try:
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open the database copy {path}: {exc}") from None
    with contextlib.closing(db):
        try:
            rows = [str(row[0]) for row in db.execute("PRAGMA integrity_check").fetchall()]
            if rows != ["ok"]:
                raise BackupError(
                    f"the database copy {path} fails PRAGMA integrity_check: {'; '.join(rows[:3])}"
                )
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            migrations = (
                [str(r[0]) for r in db.execute("SELECT name FROM migration ORDER BY id")]
                if "migration" in tables
                else []
            )
            tasks = (
                db.execute("SELECT count(*) FROM task").fetchone()[0] if "task" in tables else None
            )
        except sqlite3.DatabaseError as exc:
            raise BackupError(
                f"the database copy {path} is not a sound SQLite file: {exc}"
            ) from None
    return migrations, tasks
