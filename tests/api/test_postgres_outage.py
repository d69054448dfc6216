"""PostgreSQL failing under a running app: 503 with Retry-After, no hang, recovery in place."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import httpx
import pytest

from apiclub import __version__
from apiclub.api import create_app
from apiclub.settings import Settings
from tests.api.conftest import serve
from tests.postgres import Postgres, StopMode, postgres, postgres_url, private_postgres

__all__ = ["postgres", "postgres_url", "private_postgres"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

RECOVERY_ATTEMPTS = 50
"""Requests tried after the server is back before giving up (a pause of 0.1 s between)."""


def app_on(tmp_path: Path, url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=url)


def assert_unavailable(response: httpx.Response, password: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["status_code"] == 503
    assert body["detail"].startswith("Service Unavailable: the database")
    assert body["detail"].endswith(", retry later")
    assert password not in response.text


async def first_success(client: httpx.AsyncClient, path: str) -> httpx.Response:
    for _ in range(RECOVERY_ATTEMPTS):
        response = await client.get(path)
        if response.status_code == 200:
            return response
        await asyncio.sleep(0.1)
    return response


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_down_while_serving_is_503_then_recovers_without_a_restart(
    private_postgres: Postgres,
    tmp_path: Path,
    mode: StopMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(create_app(app_on(tmp_path, private_postgres.url))) as client:
        created = (await client.post("/task/", json={"name": "kept"})).json()
        await asyncio.to_thread(private_postgres.stop, mode)
        with caplog.at_level(logging.DEBUG):
            for method, path, body in [
                ("GET", "/task/", None),
                ("GET", "/db-check", None),
                ("GET", f"/task/{created['id']}", None),
                ("POST", "/task/", {"name": "lost?"}),
                ("DELETE", f"/task/{created['id']}", None),
            ]:
                response = await client.request(method, path, json=body)
                assert_unavailable(response, private_postgres.password)
        assert private_postgres.password not in caplog.text
        await asyncio.to_thread(private_postgres.start)
        assert (await first_success(client, "/db-check")).json() == {"results": [1]}
        listed = (await client.get("/task/")).json()
        assert listed["tasks"] == [created]  # the refused POST and DELETE changed nothing
        assert (await client.post("/task/", json={"name": "after"})).status_code == 201


async def test_a_blocked_query_answers_503_within_the_command_timeout(
    postgres_url: str, tmp_path: Path
) -> None:
    async with serve(create_app(app_on(tmp_path, postgres_url))) as client:
        blocker = await asyncpg.connect(postgres_url, timeout=10)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE task IN ACCESS EXCLUSIVE MODE")
                # Without the command timeout this request would wait for the lock forever.
                response = await client.get("/task/", timeout=60)
            assert response.status_code == 503, response.text
            assert response.json()["detail"] == (
                "Service Unavailable: the database did not answer in time, retry later"
            )
            assert response.headers["retry-after"] == "5"
        finally:
            await blocker.close()
        assert (await client.get("/task/")).status_code == 200


async def test_an_unexpected_database_error_is_500_without_details(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(create_app(app_on(tmp_path, postgres_url))) as client:
        connection = await asyncpg.connect(postgres_url, timeout=10)
        try:
            await connection.execute("DROP TABLE task CASCADE")
        finally:
            await connection.close()
        with caplog.at_level(logging.ERROR, logger="apiclub"):
            response = await client.get("/task/1")
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error", "extra": None}
    for secret in ("Traceback", "does not exist", "asyncpg", "postgres", __version__):
        assert secret not in response.text
    assert 'relation "task" does not exist' in caplog.text  # the operator still sees why


async def test_restart_keeps_data_and_does_not_migrate_again(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = app_on(tmp_path, postgres_url)
    async with serve(create_app(settings)) as client:
        created = (await client.post("/task/", json={"name": "survives"})).json()
    async with serve(create_app(settings)) as client:
        assert (await client.get(f"/task/{created['id']}")).json() == created
    connection = await asyncpg.connect(postgres_url, timeout=10)
    try:
        names = await connection.fetch("SELECT name FROM migration")
    finally:
        await connection.close()
    assert len(names) == len({row["name"] for row in names})  # each migration once


async def test_shutdown_closes_the_pool(
    postgres: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    count = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"  # noqa: S608
    async with serve(create_app(app_on(tmp_path, postgres_url))) as client:
        assert (await client.get("/db-check")).status_code == 200
        assert int(postgres.psql(count)) >= 1
    # The server drops a backend a moment after its client said goodbye: wait for that.
    for _ in range(100):
        if int(postgres.psql(count)) == 0:
            break
        await asyncio.sleep(0.05)
    assert int(postgres.psql(count)) == 0
