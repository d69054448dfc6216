"""A migrations folder holding the real initial migration and a broken one after it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import piccolo_migrations
import pytest

from apiclub.db.piccolo_app import APP_CONFIG

BROKEN_ID = "2099-01-01T00:00:00:000000"

_BROKEN_MIGRATION = f'''
from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from apiclub.db.tables import Task

ID = "{BROKEN_ID}"
VERSION = "1.38.0"
DESCRIPTION = "A side effect, then a table that already exists."


async def side_effect():
    await Task.raw("CREATE TABLE side_effect (x INTEGER)")


async def conflict():
    await Task.raw("CREATE TABLE task (id INTEGER)")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="apiclub", description=DESCRIPTION)
    manager.add_raw(side_effect)
    manager.add_raw(conflict)
    return manager
'''


def broken_migrations(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the apiclub app at `folder` (real migrations + a broken one); return its id."""
    folder.mkdir(parents=True)
    for migration in Path(piccolo_migrations.__file__).parent.glob("apiclub_*.py"):
        shutil.copy(migration, folder)
    # Piccolo imports migrations by bare module name: a fresh name per test avoids its cache.
    (folder / f"broken_{uuid.uuid4().hex}.py").write_text(_BROKEN_MIGRATION)
    monkeypatch.setattr(APP_CONFIG, "migrations_folder_path", str(folder))
    return BROKEN_ID
