"""The snapshot file: a tar archive (optionally gzip-compressed), written once, read to verify.

Written to `<name>.partial` (mode 0600 from its creation) and renamed into place only after it
was read back and verified, so a snapshot under its final name is always a complete one. Read
back, every member must be a plain file listed in the manifest with the same size and SHA-256;
names that would escape the extraction directory are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from apiclub.backup.manifest import CHUNK, MANIFEST_NAME, Manifest
from apiclub.errors import BackupError

SUFFIXES = (".tar", ".tar.gz", ".tgz")
GZIP_MAGIC = b"\x1f\x8b"


def is_archive_name(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def is_compressed_name(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


class ArchiveWriter:
    """Members added in order; the manifest goes first, so a reader finds it at once."""

    def __init__(self, path: Path, *, compressed: bool) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BackupError(f"cannot create {path}: {exc.strerror or exc}") from None
        self._file = os.fdopen(fd, "wb")
        # Closed in close(): the writer outlives this call.
        if compressed:
            self._tar = tarfile.open(fileobj=self._file, mode="w:gz", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        else:
            self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def add_bytes(self, name: str, data: bytes, mode: int) -> None:
        self._add(name, len(data), mode, io.BytesIO(data))

    def add_file(self, name: str, path: Path, mode: int) -> None:
        with path.open("rb") as file:
            self._add(name, path.stat().st_size, mode, file)

    def _add(self, name: str, size: int, mode: int, stream: IO[bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, mode, int(time.time())
        self._tar.addfile(info, stream)

    def close(self) -> None:
        """Finish the archive and sync it to disk."""
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def extract_verified(archive: Path, into: Path) -> Manifest:
    """Extract `archive` into the empty directory `into`, checking it against its manifest.

    Raises:
        BackupError: the archive is missing, truncated, altered or not an apiclub snapshot.
    """
    where = f"snapshot {archive}"
    try:
        with _open(archive) as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST_NAME or not first.isfile():
                raise BackupError(f"{where} has no manifest.json first: not an apiclub snapshot")
            stream = tar.extractfile(first)
            assert stream is not None  # noqa: S101 (a regular file)
            manifest = Manifest.from_json(stream.read(), where)
            seen: set[str] = set()
            for member in tar:  # iterating starts again at the first member
                if member is first:
                    continue
                _extract_member(tar, member, manifest, into, where)
                seen.add(member.name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise BackupError(f"{where} does not exist") from None
        reason = " ".join(str(exc).split())  # one line, whatever the library wrote
        raise BackupError(
            f"{where} is truncated, damaged or not an apiclub snapshot ({reason}): pick another"
        ) from None
    if missing := sorted(set(manifest.files) - seen):
        raise BackupError(f"{where} is truncated: missing {', '.join(missing[:3])}")
    return manifest


@contextlib.contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile]:
    with archive.open("rb") as probe:
        gzipped = probe.read(2) == GZIP_MAGIC  # by its content, whatever its name
    with tarfile.open(archive, mode="r:gz" if gzipped else "r:") as tar:
        yield tar


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, manifest: Manifest, into: Path, where: str
) -> None:
    name = member.name
    parts = PurePosixPath(name).parts
    if not member.isfile() or name.startswith("/") or ".." in parts or not parts:
        raise BackupError(f"{where}: refusing member {name!r} (not a plain relative file)")
    entry = manifest.files.get(name)
    if entry is None:
        raise BackupError(f"{where}: {name} is not in its manifest: the archive was altered")
    target = into.joinpath(*parts)
    for level in reversed([target.parent, *target.parent.parents]):
        if level.is_relative_to(into) and not level.exists():
            level.mkdir(mode=0o700)  # each level 0700 (parents=True would use the umask)
    stream = tar.extractfile(member)
    assert stream is not None  # noqa: S101 (a regular file)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, entry.mode & 0o700)
    with os.fdopen(fd, "wb") as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise BackupError(
            f"{where}: {name} does not match its checksum in the manifest (damaged or altered)"
        )
    target.chmod(entry.mode & 0o777)
