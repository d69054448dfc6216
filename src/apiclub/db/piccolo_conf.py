"""Piccolo's configuration module for this process, filled in by `bind_engine`.

Piccolo looks its engine up through the module named by the `PICCOLO_CONF` environment
variable, including deep inside its migration machinery (`MigrationManager.run` calls
`engine_finder()`). This module is what that variable names once an engine is bound, so the
engine built from `Settings` is the one Piccolo uses; nothing here reads the environment.

`APP_REGISTRY` is built on first access (PEP 562): `piccolo.conf.apps` imports Piccolo's
migration machinery and `black`, a cost at every cold start that only a pending migration
needs (figures in docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from piccolo.conf.apps import AppRegistry
    from piccolo.engine.base import Engine

DB: Engine[Any] | None = None


def __getattr__(name: str) -> AppRegistry:
    if name != "APP_REGISTRY":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from piccolo.conf.apps import AppRegistry

    registry = AppRegistry(apps=["apiclub.db.piccolo_app"])
    globals()[name] = registry  # later lookups find it without calling here
    return registry
