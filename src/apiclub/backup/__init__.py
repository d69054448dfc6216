"""Backups: online snapshots, their verification and restore, scheduled snapshots, and the
Litestream child that replicates the database continuously.

May import settings, db and tls storage (docs/architecture.md); knows nothing of HTTP. Nothing is
imported here: `apiclub --help` must not pay for the database layer (cold start, issue #5).

    snapshot     take_snapshot: `apiclub backup`
    restore      restore_snapshot: `apiclub restore PATH`
    litestream   restore_replica: `apiclub restore --from URL`; Litestream's configuration
    replicator   the Litestream child of `serve --replicate`
    schedule     `serve --backup-every`
"""
