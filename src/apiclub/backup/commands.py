"""`apiclub backup` and `apiclub restore`: the command-line shell over `apiclub.backup`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apiclub.errors import ConfigError
from apiclub.settings import Settings

AddCommand = Callable[
    [str, Callable[[Settings, argparse.Namespace], int], str], argparse.ArgumentParser
]
"""Adds a subcommand that takes every setting flag (`cli._add_command`)."""


def add_backup_commands(commands: Any, add_command: AddCommand) -> None:
    """`apiclub backup` and `apiclub restore`, each taking every setting flag."""
    backup = add_command("backup", _backup, "an online, verified snapshot of the data directory")
    backup.add_argument(
        "--to",
        type=Path,
        metavar="PATH",
        help="a .tar/.tar.gz file, or a directory (default: the backup directory)",
    )
    add_command(
        "replication",
        _replication,
        "how far the Litestream replica is behind (exit 1 when behind or empty)",
    )
    restore = add_command("restore", _restore, "replace the data directory with a snapshot")
    restore.add_argument("snapshot", nargs="?", type=Path, metavar="PATH", help="a snapshot")
    restore.add_argument(
        "--from",
        dest="replica",
        metavar="URL",
        help="restore the database from a Litestream replica",
    )
    restore.add_argument(
        "--timestamp",
        metavar="T",
        help="with --from: the state at T (ISO-8601, e.g. 2026-12-03T15:00:00Z)",
    )


def _replication(settings: Settings, _: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from apiclub.backup.status import replica_status

    status = replica_status(settings)
    sys.stdout.write(status.describe(datetime.now(UTC)))
    return 0 if status.in_step else 1


def _backup(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.backup.snapshot import take_snapshot

    snapshot = take_snapshot(settings, args.to, progress=_progress_printer())
    manifest = snapshot.manifest
    tasks = "" if manifest.tasks is None else f"{manifest.tasks} tasks, "
    sys.stdout.write(
        f"wrote {snapshot.path} ({snapshot.size / 1e6:.1f} MB): {manifest.engine} database with "
        f"{tasks}{len(manifest.migrations)} migrations, {len(manifest.files) - 1} data files; "
        "verified (checksums, integrity_check ok)\n"
    )
    return 0


def _restore(settings: Settings, args: argparse.Namespace) -> int:
    from apiclub.backup.restore import restore_snapshot

    if (args.snapshot is None) == (args.replica is None):
        raise ConfigError("restore needs a snapshot PATH or --from URL (one of them)")
    if args.timestamp is not None and args.replica is None:
        raise ConfigError("--timestamp goes with --from URL (a snapshot has one time only)")
    if args.replica is not None:
        from apiclub.backup.litestream import restore_replica

        restored = restore_replica(settings, args.replica, args.timestamp)
    else:
        restored = restore_snapshot(settings, args.snapshot)
    manifest = restored.manifest
    tasks = "" if manifest.tasks is None else f"{manifest.tasks} tasks, "
    sys.stdout.write(
        f"restored {settings.data_dir} ({tasks}{len(manifest.migrations)} migrations, "
        f"taken {manifest.created_at})\n"
    )
    for path in restored.moved_aside:
        sys.stdout.write(f"  the previous data is kept in {path}\n")
    if restored.note:
        sys.stdout.write(f"  {restored.note}\n")
    return 0


def _progress_printer() -> Callable[[str, int, int], None]:
    """Progress on stderr, a line per tenth of the database copied (large databases only)."""
    shown: dict[str, int] = {}

    def show(phase: str, done: int, total: int) -> None:
        tenth = done * 10 // total if total else 10
        if total < 2 * 4096 or shown.get(phase) == tenth:
            return
        shown[phase] = tenth
        sys.stderr.write(f"apiclub: copying the {phase}: {tenth * 10}% ({done}/{total} pages)\n")

    return show
