"""Which migrations are pending, answered without Piccolo's migration machinery.

Importing that machinery (`piccolo.apps.migrations.commands`, its auto-migration modules and,
through `piccolo.conf.apps`, `black`) is a large part of a cold start (docs/performance.md),
and at almost every start nothing is pending. So the runner first compares the migration ids
named in the migration files (read with `ast`, not imported: importing one imports the
machinery) with the ids in Piccolo's `migration` table (one query through the bound engine,
SQLite or PostgreSQL), and loads the machinery only when an id is missing or the answer is unsure.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import sys
from pathlib import Path

from piccolo.apps.migrations.tables import Migration

logger = logging.getLogger(__name__)

APP_NAME = "apiclub"
"""The Piccolo app whose migrations apiclub runs (`apiclub.db.piccolo_app`)."""
MIGRATIONS_PACKAGE = "piccolo_migrations"


def migrations_folder() -> Path | None:
    """The folder Piccolo reads the migrations from, or None if the package is missing.

    Once `apiclub.db.piccolo_app` is loaded its `APP_CONFIG` is the authority (tests point it
    elsewhere); before, its folder is by construction the one `find_spec` names.
    """
    app = sys.modules.get("apiclub.db.piccolo_app")
    if app is not None:
        return Path(app.APP_CONFIG.resolved_migrations_folder_path)
    # find_spec locates the package without importing (and so without running) it.
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def migration_ids(folder: Path) -> list[str] | None:
    """The ids of the migration files in `folder`, sorted as Piccolo applies them.

    None when a file's id cannot be read without running it (a syntax error, or no literal
    `ID = "..."` at its top level): then only Piccolo can tell, and says what is wrong.
    """
    ids: list[str] = []
    try:
        # Piccolo's rule (BaseMigrationManager.get_migration_modules): every .py but __init__.
        paths = sorted(p for p in folder.iterdir() if p.suffix == ".py" and p.name != "__init__.py")
        for path in paths:
            found = _literal_id(ast.parse(path.read_bytes(), filename=str(path)))
            if found is None:
                return None
            ids.append(found)
    except (OSError, SyntaxError, ValueError):
        return None
    return sorted(ids)


def _literal_id(module: ast.Module) -> str | None:
    values = [
        node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["ID"]
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    return values[0] if len(values) == 1 and values[0] else None


async def pending_migrations() -> list[str] | None:
    """The ids of apiclub's migrations not yet recorded by the bound engine, in order.

    None when this cannot be told cheaply (no migration table yet, a file Piccolo must load,
    the database unreachable): the caller then runs Piccolo's machinery, which creates the
    table or reports the problem in its own words.
    """
    folder = migrations_folder()
    known = None if folder is None else migration_ids(folder)
    if known is None:
        return None
    try:
        ran = set(await Migration.get_migrations_which_ran(app_name=APP_NAME))
    except Exception as exc:  # no table yet, or an error the full run will name
        logger.debug("migration table not readable, taking the full path: %s", exc)
        return None
    return [migration_id for migration_id in known if migration_id not in ran]
