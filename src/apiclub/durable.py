"""Make a rename durable: what both the certificate store and a restore need after moving files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush `directory`'s entries to disk, so that a rename into it survives a power loss.

    Some filesystems refuse to open a directory: the rename is then as durable as they allow.
    """
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
