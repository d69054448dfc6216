"""What a snapshot holds, written into it as `manifest.json` and checked before any restore.

    manifest.json          this record (the archive's first member)
    database/api.db        the SQLite copy (or database/postgres.dump, pg_dump's custom format)
    data/...               the rest of the data directory: the local CA, ACME accounts,
                           certificates; keys keep mode 0600

Each file is listed with its size, mode and SHA-256, so a truncated or altered snapshot is
refused before anything is touched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from apiclub.errors import BackupError
from apiclub.units import MIB

FORMAT = "apiclub-snapshot/1"
MANIFEST_NAME = "manifest.json"
DATABASE_DIR = "database"
SQLITE_NAME = f"{DATABASE_DIR}/api.db"
POSTGRES_NAME = f"{DATABASE_DIR}/postgres.dump"
DATA_DIR = "data"
CHUNK = 1 * MIB


@dataclass(frozen=True)
class FileEntry:
    """One file of the snapshot."""

    size: int
    mode: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The snapshot's record: who made it, when, from what, and every file's checksum."""

    apiclub_version: str
    created_at: str
    """ISO-8601 UTC time the database snapshot was taken."""
    engine: str
    """`sqlite` or `postgresql`."""
    migrations: list[str]
    """Schema migrations applied in the copy, in order (Piccolo's `migration` table)."""
    tasks: int | None
    """Tasks in the copy (SQLite; None for a pg_dump)."""
    files: dict[str, FileEntry]
    source: str = ""
    """The data directory it was taken from (for the operator's eyes only)."""
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def database_name(self) -> str:
        """The archive name of the database copy."""
        return SQLITE_NAME if self.engine == "sqlite" else POSTGRES_NAME

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse a manifest.

        Raises:
            BackupError: it is not JSON, not ours, or a field is missing.
        """
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
            files = {
                str(name): FileEntry(int(e["size"]), int(e["mode"]), str(e["sha256"]))
                for name, e in raw["files"].items()
            }
            manifest = cls(
                apiclub_version=str(raw["apiclub_version"]),
                created_at=str(raw["created_at"]),
                engine=str(raw["engine"]),
                migrations=[str(m) for m in raw["migrations"]],
                tasks=None if raw["tasks"] is None else int(raw["tasks"]),
                files=files,
                source=str(raw.get("source", "")),
                extra=dict(raw.get("extra", {})),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(
                f"{where}: its manifest.json is not an apiclub manifest ({exc})"
            ) from None
        if manifest.engine not in {"sqlite", "postgresql"}:
            raise BackupError(f"{where}: unknown database engine {manifest.engine!r}")
        if manifest.database_name not in manifest.files:
            raise BackupError(f"{where}: the manifest lists no {manifest.database_name}")
        return manifest


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    with path.open("rb") as file:
        return sha256_stream(file)


def sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
