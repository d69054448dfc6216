"""The pid file in the data directory: which process `apiclub reload` signals.

The parent (generations.py) writes it once its workers serve and removes it at its exit;
it stays the same process across reloads, so systemd's `ExecReload=` and scripts agree.
"""

from __future__ import annotations

import logging
import os
import signal

from apiclub.errors import ApiclubError
from apiclub.settings import Settings

logger = logging.getLogger("apiclub.workers")

PID_FILE = "apiclub.pid"


def write_pid_file(settings: Settings) -> None:
    """Name this process in the data directory (atomically: a reader never sees half)."""
    path = settings.data_dir / PID_FILE
    try:
        temporary = path.with_suffix(".pid.tmp")
        temporary.write_text(f"{os.getpid()}\n")
        temporary.replace(path)
    except OSError as exc:
        logger.warning("cannot write the pid file %s: %s", path, exc)


def remove_pid_file(settings: Settings) -> None:
    """Remove the pid file if it still names this process."""
    path = settings.data_dir / PID_FILE
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def send_reload(settings: Settings) -> int:
    """`apiclub reload`: SIGHUP to the parent named by the pid file; its pid.

    Raises:
        ApiclubError: no pid file, or its process is gone.
    """
    path = settings.data_dir / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ApiclubError(
            f"cannot read the pid file {path}: {exc}; is `apiclub serve` running with this data "
            "directory (--data-dir/APICLUB_DATA_DIR)?"
        ) from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ApiclubError(
            f"the pid file {path} names process {pid}, which is not running: start "
            "`apiclub serve` again"
        ) from None
    return pid
