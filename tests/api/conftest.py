"""An API app on a real database, started through its lifespan (so migrated).

The database is parametrised: every test using `settings` (and so `app` and `client`) runs on a
real SQLite file in tmp_path and on a fresh database of a real PostgreSQL server (skipped, with
the reason, where the server is not installed). Tests that are SQLite's by nature (WAL, busy
timeout, a read-only file) carry `@pytest.mark.sqlite_only` and run on SQLite alone.

The client is httpx's `ASGITransport` on the test's own event loop, so requests really run
concurrently: Litestar's AsyncTestClient calls the app through a blocking portal in another
thread, which serialises requests and blocks the test's loop while one waits on a lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from apiclub.api import create_app
from apiclub.settings import Settings
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # fixtures the `settings` fixture asks for by name

MAX_BODY_SIZE = 4096
ENGINES = ("sqlite", "postgres")
MAX_TASK_ID = {"sqlite": 2**63 - 1, "postgres": 2**31 - 1}
"""The largest id each engine's `id` column holds: SQLite's 64-bit rowid, PostgreSQL's `serial`
(a 32-bit `integer`, as the first migration creates it)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of SQLite itself (WAL, busy, files)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" in metafunc.fixturenames:
        sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("database", ENGINES[:1] if sqlite_only else ENGINES, indirect=True)


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s start-up and shut-down around a client talking to it."""
    async with app.lifespan():
        # Litestar types its ASGI signature with TypedDicts, narrower than httpx's mappings.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str | None:
    """The engine under test: None for SQLite, a fresh database's URL for PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def max_task_id(database: str | None) -> int:
    """The largest task id of the engine under test (`MAX_TASK_ID`)."""
    return MAX_TASK_ID["sqlite" if database is None else "postgres"]


@pytest.fixture
def settings(tmp_path: Path, database: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_body_size=MAX_BODY_SIZE, database_url=database)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as client:
        yield client
