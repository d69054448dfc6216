"""tests/postgres.py itself: a real server that the app's user reaches with its password only."""

from __future__ import annotations

import asyncpg
import pytest

from tests.postgres import Postgres, postgres, postgres_url, private_postgres

__all__ = ["postgres", "postgres_url", "private_postgres"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio


async def test_the_app_user_connects_over_tcp_with_its_password(postgres: Postgres) -> None:
    connection = await asyncpg.connect(postgres.url, timeout=10)
    try:
        user, database, address = await connection.fetchrow(
            "SELECT current_user, current_database(), host(inet_server_addr())"
        )
    finally:
        await connection.close()
    assert (user, database, address) == ("apiclub", "apiclub", "127.0.0.1")


async def test_a_wrong_password_is_refused(postgres: Postgres) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError, match="password authentication failed"):
        await asyncpg.connect(postgres.url_for(postgres.database, password="wrong"), timeout=10)


async def test_the_superuser_cannot_log_in_over_tcp(postgres: Postgres) -> None:
    url = f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(url, timeout=10)


async def test_each_test_gets_a_fresh_database_it_owns(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url, timeout=10)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        await connection.execute("CREATE TABLE probe (id serial PRIMARY KEY)")
    finally:
        await connection.close()
    assert tables == 0


async def test_a_dropped_database_is_gone(postgres: Postgres) -> None:
    url = postgres.create_database("dropped_here")
    postgres.drop_database("dropped_here")
    with pytest.raises(asyncpg.InvalidCatalogNameError, match="dropped_here"):
        await asyncpg.connect(url, timeout=10)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restarted_server_has_its_data_on_the_same_url(
    private_postgres: Postgres, mode: str
) -> None:
    connection = await asyncpg.connect(private_postgres.url, timeout=10)
    await connection.execute("CREATE TABLE kept (name text); INSERT INTO kept VALUES ('one')")
    private_postgres.stop(mode)  # type: ignore[arg-type]
    # The open connection is dead and a new one is refused while the server is down.
    with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
        await connection.fetchval("SELECT 1")
    with pytest.raises(OSError, match=r"Connect call failed|Connection refused"):
        await asyncpg.connect(private_postgres.url, timeout=10)
    assert not private_postgres.is_running()
    private_postgres.restart()
    connection = await asyncpg.connect(private_postgres.url, timeout=10)
    try:
        assert await connection.fetchval("SELECT name FROM kept") == "one"
    finally:
        await connection.close()
