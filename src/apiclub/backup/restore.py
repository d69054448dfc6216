"""`apiclub restore`: put a verified snapshot in place of the data directory, keeping the old one.

Order, so that a refusal touches nothing:
1. the serving lock, exclusively and without waiting: no server runs on the data directory,
   and none starts until the restore is over (it waits for the lock);
2. the snapshot is extracted beside the data directory and verified (manifest, checksums,
   `PRAGMA integrity_check`, the tasks and migrations the manifest promised);
3. only then is the current data directory renamed `<name>.before-restore-<time>` (never
   deleted) and the restored one renamed into its place, on the same file system.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apiclub.backup.archive import extract_verified
from apiclub.backup.manifest import DATA_DIR, POSTGRES_NAME, SQLITE_NAME, Manifest
from apiclub.backup.sqlite_copy import check_database
from apiclub.durable import fsync_dir
from apiclub.errors import BackupError
from apiclub.serving_lock import no_server_running, serving_lock_path
from apiclub.settings import Settings

SIDE_FILES = ("-wal", "-shm", "-journal")
RESTORED_SUFFIX = ".restored-from-snapshot"
"""Beside a database put back from a snapshot: a Litestream replica of the data it replaced
must not be continued with it (`replicator.check_replica_lineage`)."""


def restored_marker(database: Path) -> Path:
    return database.with_name(database.name + RESTORED_SUFFIX)


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    manifest: Manifest
    moved_aside: list[Path]
    """Where the previous data went (nothing is deleted)."""
    note: str = ""
    """What the operator still has to do (PostgreSQL: load the dump)."""


def stamp(now: datetime | None = None) -> str:
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"


def restore_snapshot(settings: Settings, archive: Path) -> Restored:
    """Replace the data directory (and the database) with the snapshot `archive`.

    Raises:
        ServerRunningError: a server runs on the data directory; nothing was touched.
        BackupError: the snapshot failed verification; nothing was touched.
    """
    lock = serving_lock_path(settings)
    with no_server_running(lock, "refusing to restore"), _scratch(settings.data_dir) as scratch:
        manifest = extract_verified(archive, scratch)
        _check_engine(settings, manifest, archive)
        if manifest.engine == "sqlite":
            migrations, tasks = check_database(scratch / SQLITE_NAME)
            if migrations != manifest.migrations or tasks != manifest.tasks:
                raise BackupError(
                    f"snapshot {archive}: its database holds {tasks} tasks and "
                    f"{len(migrations)} migrations, its manifest says {manifest.tasks} and "
                    f"{len(manifest.migrations)}: it was altered; pick another snapshot"
                )
        return _swap_in(settings, manifest, scratch)


def install_database_locked(settings: Settings, database: Path, created_at: str) -> Restored:
    """Put a database file restored from elsewhere (a Litestream replica) in place of the
    current one, keeping the data directory's other files; the old database is moved aside.
    The caller holds the serving lock (`no_server_running`).

    Raises:
        BackupError: `database` fails `PRAGMA integrity_check`; nothing was touched.
    """
    migrations, tasks = check_database(database)
    moved = _move_database_aside(settings.database_path, stamp())
    # From the replica itself: Litestream continues that replica with it, as it should.
    restored_marker(settings.database_path).unlink(missing_ok=True)
    settings.database_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    database.chmod(0o600)
    database.replace(settings.database_path)
    fsync_dir(settings.database_path.parent)
    return Restored(Manifest("", created_at, "sqlite", migrations, tasks, {}), moved)


def _check_engine(settings: Settings, manifest: Manifest, archive: Path) -> None:
    wanted = "sqlite" if settings.database_url is None else "postgresql"
    if manifest.engine != wanted:
        raise BackupError(
            f"snapshot {archive} holds a {manifest.engine} database, but this apiclub is set up "
            f"for {wanted} (APICLUB_DATABASE_URL): restore it with the matching settings"
        )


def _swap_in(settings: Settings, manifest: Manifest, scratch: Path) -> Restored:
    when = stamp()
    data_dir = settings.data_dir.absolute()
    new_dir = scratch / DATA_DIR
    new_dir.mkdir(mode=0o700, exist_ok=True)
    database = settings.database_path.absolute()
    inside = database.is_relative_to(data_dir)
    note = ""
    if manifest.engine == "sqlite" and inside:
        placed = new_dir / database.relative_to(data_dir)
        placed.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        (scratch / SQLITE_NAME).replace(placed)
    elif manifest.engine == "postgresql":
        dump = new_dir / "restore-postgres.dump"
        (scratch / POSTGRES_NAME).replace(dump)
        from apiclub.backup.postgres_dump import restore_command

        assert settings.database_url is not None  # noqa: S101 (checked by _check_engine)
        note = (
            "the PostgreSQL data is not loaded automatically; into an empty database run: "
            f"{restore_command(settings.database_url, data_dir / dump.name)}"
        )
    moved: list[Path] = []
    new_dir.chmod(0o700)
    if _is_mount(data_dir):
        moved.append(_swap_contents(data_dir, new_dir, scratch, when))
    else:
        _remove_if_only_locks(data_dir)  # a new data directory: nothing to keep aside
        if data_dir.exists():
            aside = data_dir.with_name(f"{data_dir.name}.before-restore-{when}")
            data_dir.rename(aside)
            moved.append(aside)
        new_dir.rename(data_dir)
    if manifest.engine == "sqlite" and not inside:
        moved += _move_database_aside(database, when)
        (scratch / SQLITE_NAME).replace(database)
        fsync_dir(database.parent)
    if manifest.engine == "sqlite":
        restored_marker(database).write_text(f"{manifest.created_at}\n")
    fsync_dir(data_dir.parent)
    return Restored(manifest, moved, note)


def _remove_if_only_locks(data_dir: Path) -> None:
    """Remove a data directory holding nothing but empty lock files (the restore's own)."""
    if not data_dir.is_dir():
        return
    entries = list(data_dir.iterdir())
    if all(e.is_file() and e.name.endswith(".lock") and e.stat().st_size == 0 for e in entries):
        for entry in entries:
            entry.unlink()
        data_dir.rmdir()


def _is_mount(data_dir: Path) -> bool:
    """A data directory that is a mount point (a container's volume) cannot be renamed."""
    return data_dir.is_dir() and os.path.ismount(data_dir)


def _swap_contents(data_dir: Path, new_dir: Path, scratch: Path, when: str) -> Path:
    """Swap what the mount point holds: its entries go into `.before-restore-<time>` inside
    it (kept, and skipped by later snapshots), the restored ones take their place."""
    aside = data_dir / f".before-restore-{when}"
    aside.mkdir(mode=0o700)
    for entry in list(data_dir.iterdir()):
        if entry not in (aside, scratch) and not entry.name.startswith(".before-restore-"):
            entry.rename(aside / entry.name)
    for entry in list(new_dir.iterdir()):
        entry.rename(data_dir / entry.name)
    return aside


def _move_database_aside(database: Path, when: str) -> list[Path]:
    moved = []
    # Litestream's local state describes the old file: it must not meet the new one.
    names = [database.name + suffix for suffix in ("", *SIDE_FILES)]
    for name in [*names, f".{database.name}-litestream"]:
        path = database.with_name(name)
        if path.exists():
            aside = path.with_name(f"{path.name}.before-restore-{when}")
            path.rename(aside)
            moved.append(aside)
    return moved


@contextlib.contextmanager
def _scratch(data_dir: Path) -> Iterator[Path]:
    """A private directory on the data directory's file system (renames there are atomic)."""
    # Inside it when it is a mount point: the parent may be another file system (or read-only).
    parent = data_dir.absolute() if _is_mount(data_dir) else data_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = parent / f".{data_dir.name}.restoring-{stamp()}-{os.getpid()}"
        path.mkdir(mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot prepare the restore beside {data_dir}: {exc}") from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
