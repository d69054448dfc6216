"""`apiclub backup`: one online snapshot of the data directory, verified before it is kept.

The database (SQLite's backup API, or `pg_dump` on PostgreSQL), the local CA, the ACME
accounts and the certificates go into one archive with a manifest, while the server keeps
serving. The archive is then read back and checked exactly as a restore would check it
(checksums, `PRAGMA integrity_check`), and only then renamed to its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apiclub import __version__
from apiclub.backup import postgres_dump
from apiclub.backup.archive import (
    ArchiveWriter,
    extract_verified,
    is_archive_name,
    is_compressed_name,
)
from apiclub.backup.files import read_data_files
from apiclub.backup.manifest import (
    DATA_DIR,
    MANIFEST_NAME,
    POSTGRES_NAME,
    SQLITE_NAME,
    FileEntry,
    Manifest,
    sha256_file,
)
from apiclub.backup.sqlite_copy import Progress, check_database, copy_database
from apiclub.errors import BackupError
from apiclub.settings import Settings

PREFIX = "apiclub-"
SUFFIX = ".tar"


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot on disk."""

    path: Path
    manifest: Manifest
    size: int


def snapshot_name(when: datetime) -> str:
    """`apiclub-20261203T151500Z.tar`: sorts by time, which retention relies on."""
    return f"{PREFIX}{when.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}{SUFFIX}"


def resolve_target(settings: Settings, to: Path | None, when: datetime) -> Path:
    """Where the archive goes: `to` itself when it names a `.tar`/`.tar.gz`, else a new name
    inside the directory `to` (default: the backup directory)."""
    if to is not None and is_archive_name(to):
        return to
    directory = to if to is not None else settings.backup_directory
    return directory / snapshot_name(when)


def take_snapshot(
    settings: Settings, to: Path | None = None, progress: Progress | None = None
) -> Snapshot:
    """Snapshot the database and the data directory into a verified archive.

    Raises:
        BackupError: the database cannot be copied, the archive cannot be written, or it
            failed its verification (then nothing is left under the final name).
    """
    target = resolve_target(settings, to, datetime.now(UTC))
    if target.exists():
        raise BackupError(f"{target} exists already: choose another --to")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    partial = target.with_name(target.name + ".partial")
    with _scratch(target.parent) as scratch:
        try:
            compressed = is_compressed_name(target)
            manifest = _write_archive(settings, partial, compressed, scratch, progress)
            verify_dir = scratch / "verify"
            verify_dir.mkdir(mode=0o700)
            extract_verified(partial, verify_dir)
            if manifest.engine == "sqlite":
                check_database(verify_dir / SQLITE_NAME)
            else:
                postgres_dump.check_dump(verify_dir / POSTGRES_NAME)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return Snapshot(target, manifest, target.stat().st_size)


def _write_archive(
    settings: Settings,
    partial: Path,
    compressed: bool,
    scratch: Path,
    progress: Progress | None,
) -> Manifest:
    if settings.database_url is not None:
        db_name = POSTGRES_NAME
        db_copy = scratch / "postgres.dump"
        taken = datetime.now(UTC)
        postgres_dump.dump(settings.database_url, db_copy)
        migrations, tasks = postgres_dump.read_state(settings.database_url), None
        engine = "postgresql"
    else:
        db_name = SQLITE_NAME
        db_copy = scratch / "api.db"
        taken = copy_database(settings.database_path, db_copy, progress)
        migrations, tasks = check_database(db_copy)
        engine = "sqlite"
    skip = (settings.backup_directory, partial.parent)
    data_files = read_data_files(settings.data_dir, settings.database_path, skip)
    files = {db_name: FileEntry(db_copy.stat().st_size, 0o600, sha256_file(db_copy))}
    for item in data_files:
        files[f"{DATA_DIR}/{item.name}"] = FileEntry(len(item.data), item.mode, _sha256(item.data))
    manifest = Manifest(
        apiclub_version=__version__,
        created_at=taken.isoformat(),
        engine=engine,
        migrations=migrations,
        tasks=tasks,
        files=files,
        source=str(settings.data_dir.absolute()),
    )
    writer = ArchiveWriter(partial, compressed=compressed)
    try:
        writer.add_bytes(MANIFEST_NAME, manifest.to_json(), 0o600)
        writer.add_file(db_name, db_copy, 0o600)
        for item in data_files:
            writer.add_bytes(f"{DATA_DIR}/{item.name}", item.data, item.mode)
    finally:
        writer.close()
    db_copy.unlink()
    return manifest


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _scratch(beside: Path) -> Iterator[Path]:
    """A private (0700) working directory on the archive's file system, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=".apiclub-snapshot-", dir=beside))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
