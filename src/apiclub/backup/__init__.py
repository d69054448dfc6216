"""Backups: online snapshots, their verification and restore, scheduled snapshots, and the
Litestream child that replicates the database continuously.

May import settings, db and tls storage (DESIGN.md); knows nothing of HTTP.
"""

from __future__ import annotations

from apiclub.backup.restore import Restored, restore_snapshot
from apiclub.backup.snapshot import Snapshot, take_snapshot

__all__ = ["Restored", "Snapshot", "restore_snapshot", "take_snapshot"]
