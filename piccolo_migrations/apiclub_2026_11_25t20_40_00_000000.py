"""Search and count at scale: a maintained task count and a trigram index on task names.

`GET /task/` answered its `total` with COUNT(*) and its `name` filter with a LIKE scan, both
linear in the number of tasks (issue #5). Triggers now keep `task_count` and, on SQLite, an
FTS5 trigram index of the names right in the writing transaction; existing rows are
backfilled here. `apiclub.db.search` holds the queries that read them.

Frozen like every migration: it imports nothing from apiclub but the table it alters, and the
index expression below is a copy of `apiclub.db.search.ASCII_LOWER_SQL` as of this migration.
"""

from __future__ import annotations

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from apiclub.db.tables import Task

ID = "2026-11-25T20:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Maintain the task count and a trigram index of task names."

_SQLITE_FORWARDS = (
    "CREATE TABLE task_count (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
    "INSERT INTO task_count (id, n) SELECT 1, count(*) FROM task",
    # External content: the index stores no second copy of the names (sqlite.org/fts5.html 4.4.3).
    "CREATE VIRTUAL TABLE task_name_fts USING fts5("
    "name, content='task', content_rowid='id', tokenize='trigram')",
    "INSERT INTO task_name_fts (task_name_fts) VALUES ('rebuild')",
    """CREATE TRIGGER task_after_insert AFTER INSERT ON task BEGIN
        INSERT INTO task_name_fts (rowid, name) VALUES (new.id, new.name);
        UPDATE task_count SET n = n + 1 WHERE id = 1;
    END""",
    # An external-content FTS5 row is removed by repeating its old values (fts5.html 4.4.3).
    """CREATE TRIGGER task_after_delete AFTER DELETE ON task BEGIN
        INSERT INTO task_name_fts (task_name_fts, rowid, name)
            VALUES ('delete', old.id, old.name);
        UPDATE task_count SET n = n - 1 WHERE id = 1;
    END""",
    """CREATE TRIGGER task_after_update AFTER UPDATE OF id, name ON task BEGIN
        INSERT INTO task_name_fts (task_name_fts, rowid, name)
            VALUES ('delete', old.id, old.name);
        INSERT INTO task_name_fts (rowid, name) VALUES (new.id, new.name);
    END""",
)
_SQLITE_BACKWARDS = (
    "DROP TRIGGER task_after_update",
    "DROP TRIGGER task_after_delete",
    "DROP TRIGGER task_after_insert",
    "DROP TABLE task_name_fts",
    "DROP TABLE task_count",
)

# PostgreSQL (issue #7): pg_trgm serves LIKE on the ASCII-lowered name; the same count table.
# pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it.
_POSTGRES_FORWARDS = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX task_name_trgm ON task USING gin ("
    "translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') gin_trgm_ops)",
    "CREATE TABLE task_count (id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL)",
    # Writers queue on this one row until they commit: fine for one database, a hot spot if
    # many replicas write at once (then count per replica and sum, or drop the exact total).
    "LOCK TABLE task IN SHARE MODE",
    "INSERT INTO task_count (id, n) SELECT 1, count(*) FROM task",
    """CREATE FUNCTION task_count_change() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE task_count SET n = n + 1 WHERE id = 1;
        ELSE
            UPDATE task_count SET n = n - 1 WHERE id = 1;
        END IF;
        RETURN NULL;
    END
    $body$""",
    "CREATE TRIGGER task_count_change AFTER INSERT OR DELETE ON task "
    "FOR EACH ROW EXECUTE FUNCTION task_count_change()",
)
_POSTGRES_BACKWARDS = (
    "DROP TRIGGER task_count_change ON task",
    "DROP FUNCTION task_count_change()",
    "DROP TABLE task_count",
    "DROP INDEX task_name_trgm",
)


def _statements(forwards: bool) -> tuple[str, ...]:
    engine_type = Task._meta.db.engine_type
    if engine_type == "sqlite":
        return _SQLITE_FORWARDS if forwards else _SQLITE_BACKWARDS
    if engine_type == "postgres":
        return _POSTGRES_FORWARDS if forwards else _POSTGRES_BACKWARDS
    raise ValueError(f"no search schema for the {engine_type} engine: use SQLite or PostgreSQL")


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
