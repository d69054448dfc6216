"""Where certificates, keys and the local CA live: files under the data directory.

Modelled on certmagic's `Storage`: keys are slash-separated relative names (`ca/root.pem`),
writes are atomic, secrets are never readable by others, and a named lock serialises work
across processes (two replicas must never order the same certificate).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from apiclub.durable import fsync_dir
from apiclub.errors import StorageError
from apiclub.tls import keys

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
DIR_MODE = 0o700


class KeyNotStoredError(StorageError, KeyError):
    """`Storage.read` of a key that was never written (a `KeyError` too)."""

    def __str__(self) -> str:
        # KeyError.__str__ would show the repr of the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class Storage(Protocol):
    """The contract every store keeps.

    - `read` returns exactly the bytes of the last completed `write`, or raises
      `KeyNotStoredError` when the key was never written; other failures raise `StorageError`.
    - `write` is atomic: readers see the old bytes or the new ones, never a mix, even after a
      crash. `private=True` items are created unreadable by other users from the start.
    - `lock(name)` is exclusive across processes sharing the store, and blocks until held.
    """

    def read(self, key: str) -> bytes:
        """Return the stored bytes of `key`."""
        ...

    def read_owned(self, key: str, limit: int) -> bytes:
        """Like `read`, for a regular file of at most `limit` bytes owned by this user and
        reached through no symbolic link; anything else raises `KeyNotStoredError`."""
        ...

    def write(self, key: str, data: bytes, *, private: bool = False) -> None:
        """Store `data` under `key`, replacing it atomically."""
        ...

    def exists(self, key: str) -> bool:
        """Tell whether `key` has been written."""
        ...

    def path(self, key: str) -> Path:
        """The file behind `key`, for tools that need one (trust stores, nginx)."""
        ...

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the exclusive lock `name` for the duration of the `with` block."""
        ...


class FileStorage:
    """A `Storage` in a directory: files 0644, keys 0600, directories 0700."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Map `key` to a file under the root, refusing anything that would escape it."""
        parts = key.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            raise ValueError(f"storage key {key!r} must be a relative path like 'ca/root.pem'")
        return self.root.joinpath(*parts)

    def exists(self, key: str) -> bool:
        """Tell whether `key` has been written."""
        return self.path(key).is_file()

    def read(self, key: str) -> bytes:
        """Return the stored bytes of `key`.

        Raises:
            KeyNotStoredError: nothing was stored under `key`.
            StorageError: the file exists but cannot be read.
        """
        path = self.path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyNotStoredError(f"{path} does not exist") from None
        except OSError as exc:
            raise StorageError(
                f"reading {path}: {exc.strerror or exc}; "
                "fix its permissions or run apiclub as the user that owns the data directory"
            ) from exc

    def read_owned(self, key: str, limit: int) -> bytes:
        """The bytes of `key` if it is a regular file of at most `limit` bytes owned by us,
        reached without following any symbolic link below the root.

        For files other processes may plant (ACME challenge tokens, served to anyone on port
        80): a link there to `ca/root-key.pem`, or a FIFO, must never be read.

        Raises:
            KeyNotStoredError: nothing is stored under `key`, or it is not such a file.
        """
        parts = self.path(key).relative_to(self.root).parts
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        opened: list[int] = []
        try:
            directory = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            opened.append(directory)
            for part in parts[:-1]:
                directory = os.open(part, flags | os.O_DIRECTORY, dir_fd=directory)
                opened.append(directory)
            fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=directory)
            opened.append(fd)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise KeyNotStoredError(f"{key} is not a regular file owned by this user")
            if info.st_size > limit:
                raise KeyNotStoredError(f"{key} is larger than {limit} bytes")
            return os.read(fd, limit + 1)[:limit]
        except OSError as exc:  # missing, a link (ELOOP), a link as a directory (ENOTDIR)
            raise KeyNotStoredError(f"{key}: {exc.strerror or exc}") from None
        finally:
            for fd in opened:
                os.close(fd)

    def write(self, key: str, data: bytes, *, private: bool = False) -> None:
        """Write via a temporary file in the same directory, fsync, then rename over `key`.

        Private files get mode 0600 when they are created (no window where they are 0644),
        public ones 0644, whatever the umask.

        Raises:
            StorageError: the directory cannot be created or written (read-only, disk full).
        """
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        mode = PRIVATE_FILE_MODE if private else PUBLIC_FILE_MODE
        try:
            self._make_dirs(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            try:
                with os.fdopen(fd, "wb") as file:
                    os.fchmod(fd, mode)  # the umask took bits from `mode`: make it exact
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                tmp.replace(path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(path.parent)
        except OSError as exc:
            raise _write_error(path, exc) from exc

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold an exclusive `flock` on `keys.lock(name)`; released when the block ends.

        The kernel drops the lock if the process dies, so a crash never leaves it stuck.
        """
        path = self.path(keys.lock(name))
        try:
            self._make_dirs(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise _write_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _make_dirs(self, directory: Path) -> None:
        # Create each missing level with 0700 itself: `mkdir(parents=True)` would give the
        # parents the umask's default mode. Existing directories are left as they are.
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        for level in reversed(missing):
            level.mkdir(mode=DIR_MODE, exist_ok=True)
            level.chmod(DIR_MODE)  # a umask such as 0277 would leave it unwritable


def _write_error(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"writing {path}: {exc.strerror or exc}; make {path.parent} writable by this user "
        "(and check free space) or point APICLUB_DATA_DIR at a writable directory"
    )
