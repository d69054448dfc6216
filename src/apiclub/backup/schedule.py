"""Scheduled snapshots from the running server (`--backup-every`, `--backup-keep`).

A daemon thread of its own, never the event loop: a snapshot reads the whole database and
writes an archive, seconds on a large one. A failed snapshot (disk full, directory gone) is
logged and tried again after a growing delay, capped at the interval; it never stops the
server, as certmagic's maintenance loop treats a failed renewal.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apiclub.backoff import Backoff
from apiclub.backup.snapshot import PREFIX, SUFFIX, take_snapshot
from apiclub.errors import ApiclubError
from apiclub.settings import Settings
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.backup")

FIRST_RETRY = 10 * SECONDS
"""The wait after a failed snapshot before the next try (doubling, capped at the interval)."""
STOP_WAIT = 60 * SECONDS


class SnapshotSchedule:
    """Takes a snapshot every `settings.backup_every` seconds and keeps the newest
    `settings.backup_keep` of them in the backup directory."""

    def __init__(self, settings: Settings) -> None:
        assert settings.backup_every is not None  # noqa: S101 (the caller checks)
        self.settings = settings
        self.interval = settings.backup_every
        self.directory = settings.backup_directory
        self.backoff = Backoff(min(FIRST_RETRY, self.interval), self.interval)
        self.last_snapshot: Path | None = None
        self.last_error: str | None = None
        self.taken = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiclub-backup", daemon=True)

    def start(self) -> None:
        logger.info(
            "a snapshot every %g s into %s, keeping %d",
            self.interval,
            self.directory,
            self.settings.backup_keep,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; a snapshot in progress finishes (up to `STOP_WAIT`)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT)

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            delay = self._take_one()

    def _take_one(self) -> float:
        started = time.monotonic()
        try:
            snapshot = take_snapshot(self.settings, self.directory)
            removed = prune(self.directory, self.settings.backup_keep)
        except (ApiclubError, OSError) as exc:
            self.last_error = str(exc)
            retry = self.backoff.fail()
            logger.error("scheduled snapshot failed: %s; trying again in %.0f s", exc, retry)
            return retry
        except Exception:  # a bug must not end the schedule silently
            retry = self.backoff.fail()
            logger.exception("scheduled snapshot failed; trying again in %.0f s", retry)
            return retry
        self.backoff.succeed()
        self.last_snapshot, self.last_error = snapshot.path, None
        self.taken += 1
        logger.info(
            "snapshot %s (%.1f MB, %s tasks) in %.1f s%s",
            snapshot.path,
            snapshot.size / 1e6,
            snapshot.manifest.tasks,
            time.monotonic() - started,
            f"; removed {len(removed)} old" if removed else "",
        )
        return max(0.0, self.interval - (time.monotonic() - started))


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots named by `snapshot_name` (others are left)."""
    snapshots = sorted(
        p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file() and _is_ours(p.name)
    )
    doomed = snapshots[:-keep] if keep < len(snapshots) else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _is_ours(name: str) -> bool:
    stamp = name[len(PREFIX) : -len(SUFFIX)]
    try:
        datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return True
