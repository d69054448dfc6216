"""PostgreSQL: `TRUNCATE task` resets the maintained task count.

Migration `2026-11-25T20:40:00:000000` keeps `task_count` with row triggers, and PostgreSQL's
TRUNCATE fires no row trigger (https://www.postgresql.org/docs/current/sql-truncate.html): after
an operator truncated the table, `GET /task/` kept answering the old total, and went negative
after deletes. A statement-level AFTER TRUNCATE trigger now sets the count to 0 in the
truncating transaction. The count is also recounted once here, repairing a database truncated
before this migration.

SQLite needs nothing: it has no TRUNCATE, and its "truncate optimization" (a DELETE without
WHERE that skips the rows) is off on a table with triggers, so such a DELETE runs the row
triggers (https://sqlite.org/lang_delete.html, "The Truncate Optimization";
tests/db/test_truncate_count.py checks it on a real file).

Frozen like every migration: it imports nothing from apiclub but the table it alters.
"""

from __future__ import annotations

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from apiclub.db.tables import Task

ID = "2026-11-26T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Reset the maintained task count on TRUNCATE (PostgreSQL)."

_POSTGRES_FORWARDS = (
    """CREATE FUNCTION task_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
        UPDATE task_count SET n = 0 WHERE id = 1;
        RETURN NULL;
    END
    $body$""",
    "CREATE TRIGGER task_count_truncate AFTER TRUNCATE ON task "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_count_truncate()",
    # A table truncated before this migration holds a stale count: recount it, with writers
    # held off until this transaction commits (as the migration that created the count did).
    "LOCK TABLE task IN SHARE MODE",
    "UPDATE task_count SET n = (SELECT count(*) FROM task) WHERE id = 1",
)
_POSTGRES_BACKWARDS = (
    "DROP TRIGGER task_count_truncate ON task",
    "DROP FUNCTION task_count_truncate()",
)


def _statements(forwards: bool) -> tuple[str, ...]:
    engine_type = Task._meta.db.engine_type
    if engine_type == "sqlite":
        return ()  # no TRUNCATE; DELETE without WHERE runs the row triggers (see above)
    if engine_type == "postgres":
        return _POSTGRES_FORWARDS if forwards else _POSTGRES_BACKWARDS
    raise ValueError(f"no task count for the {engine_type} engine: use SQLite or PostgreSQL")


async def _run_forwards() -> None:
    for statement in _statements(forwards=True):
        await Task.raw(statement)


async def _run_backwards() -> None:
    for statement in _statements(forwards=False):
        await Task.raw(statement)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="apiclub", description=DESCRIPTION)
    manager.add_raw(_run_forwards)
    manager.add_raw_backwards(_run_backwards)
    return manager
