"""`serve --replicate URL`: Litestream as a child process, started, watched and restarted.

The child runs `litestream replicate` on our database with a generated configuration; its
stderr lines go to our log (`apiclub.litestream`, at their own level). When it exits while we
serve, it is started again after a growing delay (`Backoff`, reset once it has run for
`HEALTHY_AFTER`), and the failure is logged; the server goes on serving either way, since
replication protects against a later disaster, not this request.

It is stopped after the server closed the database, so its last sync ships the final commits.
If apiclub itself is killed, the kernel sends the child SIGTERM (`PR_SET_PDEATHSIG`): an
orphaned Litestream would otherwise go on and meet a second one at the next start.
"""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from apiclub.backoff import Backoff
from apiclub.backup.litestream import child_environment, litestream_binary, write_config
from apiclub.backup.replica_watch import ReplicaWatch
from apiclub.backup.restore import restored_marker
from apiclub.errors import BackupError
from apiclub.settings import Settings, redact_url
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.litestream")

FIRST_RESTART = 1 * SECONDS
MAX_RESTART = 60 * SECONDS
HEALTHY_AFTER = 30 * SECONDS
STOP_WAIT = 35 * SECONDS
"""Litestream's own shutdown sync may retry for 30 s; then it is killed."""
PR_SET_PDEATHSIG = 1
_LEVEL = re.compile(r"\blevel=(DEBUG|INFO|WARN|ERROR)\b")
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}


@dataclass
class ReplicationState:
    """What `apiclub` knows of its Litestream child, for logs and status reports."""

    running: bool = False
    pid: int | None = None
    starts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    errors: int = 0
    """Lines Litestream logged at ERROR."""


class Replicator:
    """Supervises one `litestream replicate` child for the database of `settings`."""

    def __init__(self, settings: Settings) -> None:
        assert settings.replicate is not None  # noqa: S101 (the caller checks)
        self.settings = settings
        self.binary = litestream_binary()  # fails at start, in one line, when missing
        child_environment(settings)  # so does an unreadable APICLUB_REPLICATE_ENV_FILE
        check_replica_lineage(settings)
        self.state = ReplicationState()
        self.watch = ReplicaWatch(settings)
        self.backoff = Backoff(FIRST_RESTART, MAX_RESTART)
        self._dir = Path(tempfile.mkdtemp(prefix="apiclub-litestream-"))
        self._config = self._dir / "litestream.yml"
        write_config(settings, self._config)
        self._stop = threading.Event()
        self._child: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="apiclub-litestream", daemon=True)

    def start(self) -> None:
        logger.info(
            "replicating %s to %s with Litestream",
            self.settings.database_path,
            redact_url(self.settings.replicate or ""),
        )
        self._thread.start()
        self.watch.start()

    def stop(self) -> None:
        """SIGTERM the child (its last sync), wait up to `STOP_WAIT`, then kill it."""
        self._stop.set()
        self.watch.stop()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                logger.warning("Litestream did not stop in %.0f s: killed", STOP_WAIT)
                child.kill()
                child.wait()
        if self._thread.is_alive():
            self._thread.join(5 * SECONDS)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status = self._run_child()
            if self._stop.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER:
                self.backoff.succeed()
            delay = self.backoff.fail()
            logger.error(
                "Litestream exited with status %s (%s): replication is paused; restarting it "
                "in %.0f s",
                status,
                self.state.last_error or "no error logged",
                delay,
            )
            if self._stop.wait(delay):
                return

    def _run_child(self) -> int | None:
        try:
            child = subprocess.Popen(  # noqa: S603 (our own arguments, no shell)
                [self.binary, "replicate", "-config", str(self._config), "-no-expand-env"],
                env=child_environment(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=_die_with_parent,
                # Its own session: a Ctrl-C at the terminal must not stop it before the server
                # closed the database (its last sync would miss the last commits); we stop it.
                start_new_session=True,
            )
        except OSError as exc:
            self.state.last_error = str(exc)
            return None
        with self._lock:
            self._child = child
        self.state.running, self.state.pid = True, child.pid
        self.state.starts += 1
        assert child.stderr is not None  # noqa: S101 (piped)
        self._forward(child.stderr)
        status = child.wait()
        self.state.running, self.state.last_exit = False, status
        return status

    def _forward(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip()
            if not text:
                continue
            match = _LEVEL.search(text)
            level = _LEVELS[match.group(1)] if match else logging.WARNING
            if level >= logging.ERROR or text.startswith("Error"):
                self.state.last_error = text
                self.state.errors += 1
                level = max(level, logging.ERROR)
            logger.log(level, "%s", text)


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child


def _die_with_parent() -> None:
    # In the child, between fork and exec: one system call, nothing that could take a lock.
    # The signal comes when the thread that started the child ends, and that thread waits for
    # the child for as long as it runs.
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def check_replica_lineage(settings: Settings) -> None:
    """Refuse to continue a replica with a database put back from a snapshot.

    Litestream takes a database without local state for the replica's own latest state, and
    ships the next changes on top of the replica's history: a snapshot's older pages would be
    mixed with newer ones, and a restore from that replica would give neither. An empty
    replica is fine (the note is then dropped); otherwise the operator picks a new one.

    Raises:
        BackupError: the replica holds history and the database came from a snapshot.
    """
    from apiclub.backup.status import replica_status

    marker = restored_marker(settings.database_path)
    if not marker.exists():
        return
    if replica_status(settings).newest_txid is None:
        marker.unlink(missing_ok=True)
        return
    raise BackupError(
        f"{settings.database_path} was restored from a snapshot, and the replica "
        f"{redact_url(settings.replicate or '')} holds the history of the data it replaced: "
        "continuing it would mix the two; replicate to a new path (or empty that one), or "
        f"delete {marker} if you emptied it yourself"
    )
