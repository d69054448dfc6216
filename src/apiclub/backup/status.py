"""`apiclub replication`: how far the replica is behind the database, from the outside.

It asks the replica itself (`litestream ltx -json` on a configuration naming it: its newest
change and when it was shipped) and compares that with the database's last write (the mtime of
`api.db-wal`, or of `api.db`). It needs no running server, so it also tells, after a crash,
what a restore from the replica would lose.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apiclub.backup.litestream import child_environment, config_file, litestream_binary
from apiclub.errors import BackupError, ConfigError
from apiclub.settings import Settings, redact_url

IN_STEP = 2.0
"""Seconds of lag still "in step": Litestream's sync interval (1 s) and its WAL poll."""


@dataclass(frozen=True)
class ReplicaStatus:
    """The replica's newest change against the database's last write."""

    url: str
    newest_txid: str | None
    newest_at: datetime | None
    last_write: datetime | None

    @property
    def lag(self) -> float | None:
        """Seconds the newest write is ahead of the replica (None: no replica yet)."""
        if self.newest_at is None:
            return None
        if self.last_write is None:
            return 0.0
        return max(0.0, (self.last_write - self.newest_at).total_seconds())

    @property
    def in_step(self) -> bool:
        return self.lag is not None and self.lag <= IN_STEP

    def describe(self, now: datetime) -> str:
        lines = [f"replica {redact_url(self.url)}"]
        if self.newest_at is None:
            lines.append("  holds nothing yet: is `apiclub serve --replicate` running?")
        else:
            age = (now - self.newest_at).total_seconds()
            shipped = f"{self.newest_at:%Y-%m-%d %H:%M:%S}"
            lines.append(
                f"  newest change: txid {self.newest_txid}, shipped {shipped} UTC ({age:.0f} s ago)"
            )
        if self.last_write is not None:
            lines.append(f"  last write to the database: {self.last_write:%Y-%m-%d %H:%M:%S} UTC")
        if self.in_step:
            lines.append("  in step: a restore now loses at most Litestream's sync interval")
        elif self.lag is not None:
            lines.append(f"  behind by {self.lag:.0f} s: check the log (apiclub.litestream)")
        return "\n".join(lines) + "\n"


def replica_status(settings: Settings, timeout: float = 120.0) -> ReplicaStatus:
    """Ask the replica of `settings.replicate` for its newest change.

    Raises:
        ConfigError: no replica is configured, or Litestream is missing.
        BackupError: the replica cannot be read.
    """
    if settings.replicate is None:
        raise ConfigError("no replica: set APICLUB_REPLICATE (--replicate URL) as for serve")
    binary, database = litestream_binary(), str(settings.database_path.absolute())
    with config_file(settings) as config:
        result = subprocess.run(  # noqa: S603 (our own arguments, no shell)
            [binary, "ltx", *config, "-json", "-level", "all", database],
            env=child_environment(settings),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    files: list[dict[str, str]] = []
    if result.returncode == 0:
        try:
            files = json.loads(result.stdout or "[]") or []
        except ValueError:
            files = []
    elif "not found" not in result.stderr.lower() and "no such file" not in result.stderr.lower():
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"cannot read the replica {redact_url(settings.replicate)}: {last}")
    newest = max(files, key=lambda f: (f["max_txid"], f["timestamp"]), default=None)
    return ReplicaStatus(
        url=settings.replicate,
        newest_txid=newest["max_txid"] if newest else None,
        newest_at=_parse(newest["timestamp"]) if newest else None,
        last_write=last_write_time(settings.database_path),
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def last_write_time(database: Path) -> datetime | None:
    """When the database was last written (its WAL's or its own mtime), None if absent."""
    times = [
        path.stat().st_mtime
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    ]
    return datetime.fromtimestamp(max(times), UTC) if times else None
