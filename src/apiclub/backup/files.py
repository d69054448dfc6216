"""The data directory's files a snapshot carries: everything but the live database and locks.

The database goes through SQLite's backup API (`snapshot`), never as a file copy: its `-wal`
may hold commits the main file lacks yet. Locks, temporary files and Litestream's own state
are not data. Symbolic links are not followed (nothing outside the data directory is read).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from apiclub.tls import keys

READ_ATTEMPTS = 3
"""Reads of the whole set until no file changed while it was read (a renewal mid-copy)."""


@dataclass(frozen=True)
class DataFile:
    """One file read from the data directory: its name (slash-separated), mode and bytes."""

    name: str
    mode: int
    data: bytes


def read_data_files(data_dir: Path, database: Path, skip: tuple[Path, ...] = ()) -> list[DataFile]:
    """Read the data directory's files (not the database), as one consistent set.

    Certificates and keys are replaced by atomic renames, a key before its chain: a set read
    while a renewal wrote could pair an old key with a new chain. The set is read again until
    every file's identity (inode, size, mtime) is the same before and after the read.
    """
    if not data_dir.is_dir():
        return []
    excluded = _excluded_names(database)
    skipped = {path.absolute() for path in skip}
    for _ in range(READ_ATTEMPTS):
        paths = list(_walk(data_dir.absolute(), excluded, skipped))
        before = [_identity(path) for path in paths]
        files = [
            DataFile(path.relative_to(data_dir.absolute()).as_posix(), mode, path.read_bytes())
            for path, mode in ((p, stat.S_IMODE(p.stat().st_mode)) for p in paths)
        ]
        if before == [_identity(path) for path in paths]:
            return files
    return files


def _excluded_names(database: Path) -> set[str]:
    name = database.name
    return {
        name,
        f"{name}-wal",
        f"{name}-shm",
        f"{name}-journal",
        f".{name}-litestream",  # Litestream 0.5's local state beside the database
        f"{name}.restored-from-snapshot",  # restore's note for the replicator
    }


def _walk(root: Path, excluded: set[str], skipped: set[Path]) -> list[Path]:
    found: list[Path] = []
    for directory, dirs, names in os.walk(root, followlinks=False):
        here = Path(directory)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in excluded
            and d != keys.LOCKS_DIR
            and not d.startswith(".before-restore-")  # a restore's kept data (mount points)
            and ".restoring-" not in d
            and (here / d) not in skipped
            and not (here / d).is_symlink()
        )
        for name in sorted(names):
            path = here / name
            if (
                name in excluded
                or name.endswith((".lock", ".tmp"))
                or ".recovered-" in name
                or ".before-restore-" in name
                or path in skipped
                or not stat.S_ISREG(path.lstat().st_mode)  # no symlinks, sockets, fifos
            ):
                continue
            found.append(path)
    return found


def _identity(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)
