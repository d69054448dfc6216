"""An API app on a real SQLite file in tmp_path, started through its lifespan (so migrated).

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

MAX_BODY_SIZE = 4096


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s start-up and shut-down around a client talking to it."""
    async with app.lifespan():
        # Litestar types its ASGI signature with TypedDicts, narrower than httpx's mappings.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_body_size=MAX_BODY_SIZE)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as client:
        yield client
