"""What `serve` runs beside the listeners for backups: the snapshot schedule and Litestream.

Both start once the server is ready (the database exists and is migrated) and stop after it
stopped (the database is closed, so Litestream's last sync carries the final commits). With
`--workers N` they run once, in the parent.
"""

from __future__ import annotations

from apiclub.backup.replicator import Replicator
from apiclub.backup.schedule import SnapshotSchedule
from apiclub.settings import Settings


class BackupCompanions:
    """The schedule and the replicator `settings` ask for (none by default)."""

    def __init__(self, settings: Settings) -> None:
        """Raises:
        ConfigError: replication is asked for and Litestream is not installed.
        """
        self.replicator = Replicator(settings) if settings.replicate is not None else None
        self.schedule = SnapshotSchedule(settings) if settings.backup_every is not None else None
        self._started = False

    def start(self) -> None:
        """Start them (once; later calls do nothing)."""
        if self._started:
            return
        self._started = True
        if self.replicator is not None:
            self.replicator.start()
        if self.schedule is not None:
            self.schedule.start()

    def stop(self) -> None:
        if self.schedule is not None:
            self.schedule.stop()
        if self.replicator is not None:
            self.replicator.stop()
