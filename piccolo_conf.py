"""Piccolo's configuration, by Piccolo's convention, so `piccolo migrations ...` works here.

The one module that reads the environment at import (Piccolo's CLI imports it by name): the
database is the one the server would use, from the same settings loader: PostgreSQL when
APICLUB_DATABASE_URL is set (no pool: Piccolo's CLI opens a connection per query), else the
SQLite file.
"""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry

from apiclub.db.lifecycle import choose_engine
from apiclub.settings import Settings

DB = choose_engine(Settings.from_env(os.environ))
APP_REGISTRY = AppRegistry(apps=["apiclub.db.piccolo_app"])
