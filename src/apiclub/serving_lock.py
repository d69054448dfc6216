"""The serving lock: a shared `flock` every serving process holds on its database for its life.

The migration lock (`migrate.default_lock_path`) is held only while migrations run, so it
cannot tell whether a server is running. This one is: the `serve` parent for its whole life,
and each process that opens the database to serve (every worker, every replica on the same
file), take it *shared* and keep it until they close the database; `apiclub restore` takes it
*exclusive* without waiting, and refuses when it cannot. The kernel drops it when a process
dies, so a crashed server never blocks a restore. It sits outside `db/` because the parent,
which loads no Piccolo, holds it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from apiclub.errors import StorageError
from apiclub.settings import Settings


class ServerRunningError(StorageError):
    """An operation that needs the data directory to itself found a server using it."""


def serving_lock_path(settings: Settings) -> Path:
    """`<database file>.serve.lock` beside the SQLite file; `serve.lock` in the data directory
    on PostgreSQL (the certificates are still the data directory's)."""
    if settings.database_url is not None:
        return settings.data_dir / "serve.lock"
    path = settings.database_path
    return path.with_name(path.name + ".serve.lock")


class ServingLock:
    """The shared lock one serving process holds; `release()` (or exit) gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = _open(path)
        # Shared: any number of servers may share the file; only an exclusive taker waits.
        # Blocking is fine here: an exclusive holder is a restore, which takes seconds.
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        """Give the lock back (closing the descriptor drops it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def no_server_running(path: Path, what: str) -> Iterator[None]:
    """Hold the serving lock `path` exclusively for the block, so no server starts meanwhile.

    Raises:
        ServerRunningError: a server holds it now (the message names `what` was refused).
    """
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunningError(
                f"{what}: an apiclub server is running on this data directory (it holds "
                f"{path}); stop it first (systemctl stop apiclub, or Ctrl-C) and run this again"
            ) from None
        yield
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot create the serving lock {path}: {exc.strerror or exc}; "
            "make its directory writable by this user"
        ) from None
