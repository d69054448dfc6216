"""Piccolo's configuration, by Piccolo's convention, so `piccolo migrations ...` works here.

The one module that reads the environment at import (Piccolo's CLI imports it by name): the
database file is the one the server would use, from the same settings loader.
"""

from __future__ import annotations

import os

from piccolo.conf.apps import AppRegistry

from apiclub.db.engine import create_engine
from apiclub.settings import Settings

DB = create_engine(Settings.from_env(os.environ).database_path)
APP_REGISTRY = AppRegistry(apps=["apiclub.db.piccolo_app"])
