"""Server-side failures: 500 without leaks, 503 with Retry-After when the database cannot write."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx import Response

from apiclub import __version__
from apiclub.api import create_app
from apiclub.db import bind_engine, create_sqlite_engine
from apiclub.db.sqlite.engine import SQLiteDatabase
from apiclub.db.sqlite.guard import DatabaseGuard
from apiclub.settings import MIB, Settings
from tests.api.conftest import serve

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds the write lock, as a long writer in another process would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


@pytest.mark.sqlite_only
async def test_unexpected_error_is_500_without_details(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with closing(sqlite3.connect(settings.database_path)) as other:
        other.execute("DROP TABLE task")
    with caplog.at_level(logging.ERROR, logger="apiclub"):
        response = await client.get("/task/")
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error", "extra": None}
    for secret in ("Traceback", "no such table", "sqlite", "litestar", __version__):
        assert secret not in response.text
    assert "no such table: task" in caplog.text  # the operator still sees why


@pytest.mark.sqlite_only
async def test_write_blocked_past_the_busy_timeout_is_503(
    client: Client, settings: Settings
) -> None:
    bind_engine(create_sqlite_engine(settings.database_path, busy_timeout=0.2))
    with write_lock_held(settings.database_path):
        response = await client.post("/task/", json={"name": "waits too long"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"] == (
            "Service Unavailable: the database is busy, retry later"
        )
        # WAL: readers are not blocked by the writer.
        assert (await client.get("/task/")).status_code == 200
    assert (await client.post("/task/", json={"name": "now"})).status_code == 201
    assert (await client.get("/task/")).json()["total"] == 1


@pytest.mark.sqlite_only
async def test_write_waits_for_a_short_lock_instead_of_failing(
    client: Client, settings: Settings
) -> None:
    responses: list[Response] = []

    async def post() -> None:
        responses.append(await client.post("/task/", json={"name": "patient"}))

    with closing(sqlite3.connect(settings.database_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as group:
            group.start_soon(post)
            await anyio.sleep(0.5)
            assert responses == []  # waiting on the busy timeout, not failed
            other.execute("ROLLBACK")
    assert responses[0].status_code == 201


@pytest.mark.sqlite_only
async def test_read_only_database_is_503(client: Client, settings: Settings) -> None:
    # Running as root, file modes do not stop writes: open the file read-only instead.
    read_only_uri = f"file:{settings.database_path}?mode=ro"

    class ReadOnlyConnection(sqlite3.Connection):
        def __init__(self, database: object, *args: Any, **kwargs: Any) -> None:
            super().__init__(read_only_uri, *args, **{**kwargs, "uri": True})

    bind_engine(SQLiteDatabase(DatabaseGuard(settings.database_path), factory=ReadOnlyConnection))
    response = await client.post("/task/", json={"name": "cannot land"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "read-only" in response.json()["detail"]
    assert (await client.get("/task/")).status_code == 200


async def test_json_nested_100000_deep_is_400(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, max_body_size=1 * MIB))
    async with serve(app) as client:
        for content in (b"[" * 100_000, b'{"name": ' + b"[" * 100_000):
            response = await client.post(
                "/task/", content=content, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400
            assert "not valid JSON" in response.json()["detail"]
