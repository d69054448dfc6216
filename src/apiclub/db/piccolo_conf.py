"""Piccolo's configuration module for this process, filled in by `bind_engine`.

Piccolo looks its engine up through the module named by the `PICCOLO_CONF` environment
variable, including deep inside its migration machinery (`MigrationManager.run` calls
`engine_finder()`). This module is what that variable names once an engine is bound, so the
engine built from `Settings` is the one Piccolo uses; nothing here reads the environment.
"""

from __future__ import annotations

from typing import Any

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine

DB: Engine[Any] | None = None
APP_REGISTRY = AppRegistry(apps=["apiclub.db.piccolo_app"])
