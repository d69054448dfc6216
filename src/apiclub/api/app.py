"""The Litestar app factory: routes, error handlers, limits, and the database at start-up."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.plugins import PluginProtocol
from litestar.plugins.core import MsgspecDIPlugin
from litestar.types import Guard, LifespanHook

from apiclub import __version__
from apiclub.api.auth import create_token_auth
from apiclub.api.docs import PinnedSwaggerRenderPlugin
from apiclub.api.errors import create_exception_handlers
from apiclub.api.ratelimit import create_rate_limit, create_rate_limit_handlers
from apiclub.api.requests import ApiRequest
from apiclub.api.security import add_security_headers
from apiclub.api.status import check_database, read_status
from apiclub.api.tasks import task_controller
from apiclub.db import Database, close_database, engine_class, open_database
from apiclub.settings import Settings


class _Api(Litestar):
    """Litestar without the pydantic and attrs plugins it adds whenever those import.

    Piccolo depends on pydantic, so Litestar found it and imported pydantic and its plugins at
    every start, a share of every cold start (issue #5; docs/performance.md). This API's types
    are msgspec Structs only.
    """

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        # Litestar 2.x's own list minus pydantic and attrs (litestar/app.py); pinned <3.
        return [*plugins, MsgspecDIPlugin()]


def create_app(settings: Settings) -> Litestar:
    """Build the API app; its start-up opens the database and applies pending migrations.

    Start-up fails (and so the server refuses to start) with `StorageError` when the database
    is unusable (an SQLite file) or unreachable (PostgreSQL, after retrying), and with
    `MigrationError` when a migration fails. Shut-down closes PostgreSQL's connection pool.
    With `settings.auth_mode` not `off`, start-up also reads the token file (`StorageError` if
    it is corrupt) and the requests it names need a bearer token (`api/auth.py`).
    """
    # The engine's kind is known before it opens: its errors and its largest id shape the app.
    engine = engine_class(settings)
    exception_handlers = create_exception_handlers(settings.max_body_size, engine)
    middleware = []
    if settings.rate_limit is not None:
        middleware.append(create_rate_limit(settings.rate_limit).middleware)
        exception_handlers.update(create_rate_limit_handlers(settings.rate_limit))

    opened: list[Database] = []

    async def start_database() -> None:
        opened.append(await open_database(settings))

    async def stop_database() -> None:
        while opened:
            await close_database(opened.pop())

    auth = create_token_auth(settings)
    guards: list[Guard] = []
    on_startup: list[LifespanHook] = [start_database]
    on_shutdown: list[LifespanHook] = [stop_database]
    # One docs page, its CDN files pinned by hash (api/docs.py); the JSON document as before.
    docs = [PinnedSwaggerRenderPlugin()]
    openapi_config = OpenAPIConfig(title="apiclub", version=__version__, render_plugins=docs)
    if auth is not None:
        guards.append(auth.guard)
        on_startup.append(auth.start)
        on_shutdown.insert(0, auth.stop)
        openapi_config = OpenAPIConfig(
            title="apiclub",
            version=__version__,
            components=auth.components(),
            render_plugins=docs,
        )

    app = _Api(
        route_handlers=[read_status, check_database, task_controller(engine.max_task_id)],
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        guards=guards,
        exception_handlers=exception_handlers,
        middleware=middleware,
        request_class=ApiRequest,
        request_max_body_size=settings.max_body_size,
        openapi_config=openapi_config,
        before_send=[add_security_headers],
        # The launcher owns logging; Litestar's default config would reconfigure the root logger.
        logging_config=None,
        debug=False,
    )
    if auth is not None:
        auth.declare_security(app)
    return app
