"""How far the replica is behind, checked from the running server (issue #17's lag alert).

Litestream's own Prometheus metrics (its `addr`) count local syncs and replica operations, but
none says how old the replica's newest change is, and they vanish with the process they
describe. So the supervisor asks the replica itself, every `CHECK_EVERY`, as `apiclub
replication` does (`status.replica_status`: `litestream ltx` on the replica, against the mtime
of the database's last write), and keeps the answer for /metrics:

- lag: seconds of the database's writes the replica lacks, at the last check; when the replica
  cannot be read, the last change it was seen to hold stands (a lower bound that keeps
  growing with the writes); before any, the time supervision began.
- reachable: whether the last check could read the replica at all.

Changes of reachability are logged once each (not at every check), with the reason.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from apiclub.errors import BackupError, ConfigError
from apiclub.settings import Settings, redact_url

logger = logging.getLogger("apiclub.litestream")

CHECK_EVERY = 5.0
"""Seconds between two looks at the replica: each is one short `litestream ltx` process and,
for a remote replica, a few listings; the alert waits minutes, so seconds of staleness are fine."""
CHECK_TIMEOUT = 30.0
STOP_WAIT = 1.0


@dataclass
class ReplicaHealth:
    """The last check's answer (None until the first check)."""

    lag: float | None = None
    reachable: bool | None = None
    checked_at: float | None = None
    """Unix time of the last check."""
    checks: int = 0


class ReplicaWatch:
    """A thread that checks the replica of `settings` until `stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health = ReplicaHealth()
        self._since = datetime.now(UTC)
        self._newest: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiclub-replica-watch", daemon=True)

    def start(self) -> None:
        self._since = datetime.now(UTC)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking. A check under way is not waited for long: a replica that does not
        answer (Litestream's SSH dial waits 30 s) must not hold up the server's stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)

    def check(self) -> None:
        """Look at the replica once and record the answer."""
        from apiclub.backup.status import last_write_time, replica_status

        try:
            status = replica_status(self.settings, timeout=CHECK_TIMEOUT)
        except (BackupError, ConfigError, OSError, subprocess.TimeoutExpired) as exc:
            self._reachable(False, str(exc))
            last_write = last_write_time(self.settings.database_path)
        else:
            self._reachable(True, "")
            if status.newest_at is not None:
                self._newest = status.newest_at
            last_write = status.last_write
        reference = self._newest or self._since
        lag = 0.0 if last_write is None else (last_write - reference).total_seconds()
        self.health.lag = max(0.0, lag)
        self.health.checked_at = time.time()
        self.health.checks += 1

    def _reachable(self, now: bool, why: str) -> None:
        before, self.health.reachable = self.health.reachable, now
        if not now and before is not False:
            logger.error("%s (checked again every %.0f s)", why, CHECK_EVERY)
        elif now and before is False:
            url = redact_url(self.settings.replicate or "")
            logger.info("the replica %s can be read again", url)

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            self.check()
