"""Start-up opens and migrates the database; data survives a restart; failures stop start-up."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import httpx
import pytest

from apiclub.api import create_app
from apiclub.errors import MigrationError, StorageError
from apiclub.settings import Settings
from tests.api.conftest import serve
from tests.db.helpers import broken_migrations
from tests.db.migrations import MIGRATION_IDS

pytestmark = pytest.mark.anyio

CONCURRENT_POSTS = 200
AT_A_TIME = 50


async def test_concurrent_posts_are_all_stored(client: httpx.AsyncClient) -> None:
    limiter = anyio.CapacityLimiter(AT_A_TIME)
    statuses: list[int] = []

    async def post(index: int) -> None:
        async with limiter:
            response = await client.post("/task/", json={"name": f"task {index}"})
            statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        for index in range(CONCURRENT_POSTS):
            group.start_soon(post, index)

    assert statuses == [201] * CONCURRENT_POSTS
    page = (await client.get("/task/", params={"page_size": 100, "page": 2})).json()
    assert page["total"] == CONCURRENT_POSTS
    names = set()
    for number in (1, 2):
        page = (await client.get("/task/", params={"page_size": 100, "page": number})).json()
        names |= {task["name"] for task in page["tasks"]}
    assert names == {f"task {index}" for index in range(CONCURRENT_POSTS)}


@pytest.mark.sqlite_only
async def test_restart_keeps_data_and_does_not_migrate_again(settings: Settings) -> None:
    async with serve(create_app(settings)) as client:
        created = (await client.post("/task/", json={"name": "survives"})).json()
    async with serve(create_app(settings)) as client:
        assert (await client.get(f"/task/{created['id']}")).json() == created
    with closing(sqlite3.connect(settings.database_path)) as conn:
        assert conn.execute("SELECT count(*) FROM migration").fetchone() == (len(MIGRATION_IDS),)


@pytest.mark.sqlite_only
async def test_start_up_puts_the_database_in_wal_mode(settings: Settings) -> None:
    async with serve(create_app(settings)):
        with closing(sqlite3.connect(settings.database_path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_failed_migration_stops_start_up(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migration_id = broken_migrations(tmp_path / "migrations", monkeypatch)
    expected = pytest.RaisesExc(MigrationError, match=f"migration {migration_id} of apiclub failed")
    # Litestar re-raises a start-up hook's error inside an exception group (its task group).
    with pytest.RaisesGroup(expected, allow_unwrapped=True):
        async with serve(create_app(settings)):
            pytest.fail("the app must not serve after a failed migration")


async def test_unusable_data_dir_stops_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    settings = Settings(data_dir=blocker / "data")
    expected = pytest.RaisesExc(StorageError, match="not-a-dir")
    with pytest.RaisesGroup(expected, allow_unwrapped=True):
        async with serve(create_app(settings)):
            pytest.fail("the app must not serve without its database")
