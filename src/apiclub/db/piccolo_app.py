"""Piccolo's app config for apiclub: its tables and where its migrations live.

The migrations are the top-level `piccolo_migrations` package (Piccolo's convention), shipped in
the wheel, so an installed apiclub finds them without the source tree.
"""

from __future__ import annotations

import importlib.util

from piccolo.conf.apps import AppConfig

from apiclub.db.tables import Task
from apiclub.errors import MigrationError


def _migrations_folder() -> str:
    # find_spec locates the package without importing (and so without running) it.
    spec = importlib.util.find_spec("piccolo_migrations")
    if spec is None or not spec.submodule_search_locations:
        raise MigrationError("package piccolo_migrations not found: reinstall apiclub")
    return str(spec.submodule_search_locations[0])


APP_CONFIG = AppConfig(
    app_name="apiclub",
    migrations_folder_path=_migrations_folder(),
    table_classes=[Task],
)
