"""The PostgreSQL engine against a real server: start-up retries, bounded waits, no leaks."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from apiclub.db import Postgres, bind_engine, unavailable_reason, write_transaction
from apiclub.db.postgres import POOL_MAX_SIZE
from apiclub.db.tables import Task
from apiclub.errors import StorageError
from tests.postgres import Postgres as Server
from tests.postgres import postgres, postgres_url, private_postgres

__all__ = ["postgres", "postgres_url", "private_postgres"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

SECONDS = 1.0


async def test_start_opens_a_pool_that_answers(postgres_url: str) -> None:
    engine = Postgres(postgres_url)
    await engine.start()
    try:
        bind_engine(engine)
        assert await Task.raw("SELECT 1 AS one") == [{"one": 1}]
    finally:
        await engine.close()
    assert engine.pool is None


async def test_nothing_connects_before_start(private_postgres: Server) -> None:
    private_postgres.stop()
    engine = Postgres(private_postgres.url)  # Piccolo's own engine would connect here
    assert engine.pool is None


async def test_down_at_start_fails_after_retrying_without_the_password(
    private_postgres: Server, caplog: pytest.LogCaptureFixture
) -> None:
    private_postgres.stop()
    engine = Postgres(private_postgres.url)
    with (
        caplog.at_level(logging.WARNING, logger="apiclub"),
        pytest.raises(StorageError) as caught,
    ):
        await engine.start(retry_for=1.5 * SECONDS)
    message = str(caught.value)
    assert message.startswith(f"PostgreSQL at 127.0.0.1:{private_postgres.port} not reachable")
    assert "for 1.5 s (" in message
    assert "start it there or fix APICLUB_DATABASE_URL=postgresql://apiclub:***@" in message
    attempts = [r.getMessage() for r in caplog.records if "not reachable (attempt" in r.message]
    assert len(attempts) >= 2, caplog.text
    assert f"apiclub:***@127.0.0.1:{private_postgres.port}" in attempts[0]
    assert private_postgres.password not in message + caplog.text


async def test_start_waits_for_a_server_that_comes_up(private_postgres: Server) -> None:
    private_postgres.stop()
    engine = Postgres(private_postgres.url)
    starting = asyncio.create_task(engine.start(retry_for=60 * SECONDS))
    await asyncio.sleep(1 * SECONDS)
    assert not starting.done()  # still retrying, not failed
    await asyncio.to_thread(private_postgres.start)
    await starting
    try:
        bind_engine(engine)
        assert await Task.raw("SELECT 1 AS one") == [{"one": 1}]
    finally:
        await engine.close()


async def test_a_wrong_password_fails_at_once_without_it(postgres: Server) -> None:
    wrong = "not-the-password-" + postgres.password[:6]
    engine = Postgres(postgres.url_for(postgres.database, password=wrong))
    with pytest.raises(StorageError, match=r"refused the connection \(password authentication"):
        await engine.start(retry_for=60 * SECONDS)  # would take a minute if it retried


async def test_scrub_removes_the_password_in_both_spellings() -> None:
    engine = Postgres("postgresql://app:p%40ss@db.example:5433/tasks")
    assert engine.scrub(OSError("dsn postgresql://app:p%40ss@ and p@ss")) == (
        "dsn postgresql://app:***@ and ***"
    )
    assert engine.address == "db.example:5433"
    assert engine.label == "postgresql://app:***@db.example:5433/tasks"


async def test_scrub_and_label_hide_a_query_string_password() -> None:
    engine = Postgres("postgresql://app@db.example/tasks?password=s3cret")
    assert engine.scrub(OSError("auth with s3cret failed")) == "auth with *** failed"
    assert "s3cret" not in engine.label


async def test_a_command_past_the_timeout_is_cancelled(postgres_url: str) -> None:
    engine = Postgres(postgres_url, command_timeout=0.5 * SECONDS)
    await engine.start()
    try:
        bind_engine(engine)
        with pytest.raises(TimeoutError) as caught:
            await Task.raw("SELECT pg_sleep(30)")
        assert unavailable_reason(caught.value) == "the database did not answer in time"
        assert await Task.raw("SELECT 1 AS one") == [{"one": 1}]  # the pool still serves
    finally:
        await engine.close()


async def test_failed_transactions_give_their_connections_back(
    private_postgres: Server,
) -> None:
    engine = Postgres(private_postgres.url)
    await engine.start()
    try:
        bind_engine(engine)
        await Task.raw("CREATE TABLE probe (n integer)")
        await asyncio.to_thread(private_postgres.stop)
        # More failures than the pool has connections: a leak would make the next wait forever.
        for _ in range(POOL_MAX_SIZE + 2):
            with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)) as caught:
                async with write_transaction():
                    await Task.raw("INSERT INTO probe VALUES (1)")
            assert unavailable_reason(caught.value) is not None, repr(caught.value)
        await asyncio.to_thread(private_postgres.start)
        async with write_transaction():
            await Task.raw("INSERT INTO probe VALUES (2)")
        assert await Task.raw("SELECT n FROM probe") == [{"n": 2}]
    finally:
        await engine.close()


async def test_a_failed_statement_rolls_its_transaction_back(postgres_url: str) -> None:
    engine = Postgres(postgres_url)
    await engine.start()
    try:
        bind_engine(engine)
        await Task.raw("CREATE TABLE probe (n integer PRIMARY KEY)")
        with pytest.raises(asyncpg.UniqueViolationError):
            async with write_transaction():
                await Task.raw("INSERT INTO probe VALUES (1)")
                await Task.raw("INSERT INTO probe VALUES (1)")
        assert await Task.raw("SELECT n FROM probe") == []
        assert unavailable_reason(asyncpg.UniqueViolationError("dup")) is None  # a bug: 500
    finally:
        await engine.close()
