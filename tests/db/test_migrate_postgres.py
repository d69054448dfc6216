"""Migrations on a real PostgreSQL: applied once, under an advisory lock, rolled back on failure."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from apiclub.db import Postgres, migrate, migrate_database
from apiclub.db.migrate import ADVISORY_LOCK_KEY
from apiclub.errors import MigrationError
from apiclub.settings import Settings
from tests.db.helpers import broken_migrations
from tests.db.migrations import MIGRATION_IDS, RECORDED
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # fixtures used by the tests below

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
RUNNERS = 3

MIGRATE_SCRIPT = """
import asyncio, sys
from apiclub.db import migrate_database
from apiclub.settings import Settings
print(asyncio.run(migrate_database(Settings(database_url=sys.argv[1]))))
"""


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


async def recorded(url: str) -> list[tuple[str, str]]:
    async with connected(url) as connection:
        rows = await connection.fetch("SELECT name, app_name FROM migration ORDER BY id")
    return [(row["name"], row["app_name"]) for row in rows]


async def tables(url: str) -> set[str]:
    async with connected(url) as connection:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    return {row["table_name"] for row in rows}


async def wait_for_runners(holder: asyncpg.Connection, count: int) -> int:
    """How many apiclub sessions poll the advisory lock, once `count` do (or after 30 s)."""
    for _ in range(300):
        connected_now: int = await holder.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'apiclub' "
            "AND query LIKE '%pg_try_advisory_lock%'"
        )
        if connected_now >= count:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # and they have had time to finish, if the lock did not hold them
    return connected_now


async def test_applies_pending_migrations_once(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url)
    assert await migrate_database(settings) == MIGRATION_IDS
    assert await migrate_database(settings) == []
    assert await recorded(postgres_url) == RECORDED
    assert {"task", "migration"} <= await tables(postgres_url)


async def test_a_file_lock_is_refused(postgres_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="advisory lock, not a file"):
        await migrate(Postgres(postgres_url), tmp_path / "x.lock")


async def test_three_processes_at_once_apply_once(postgres_url: str) -> None:
    async with connected(postgres_url) as holder:
        # Hold the lock until every runner waits on it, then let them race.
        await holder.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE_SCRIPT, postgres_url],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(RUNNERS)
        ]
        waiting = await wait_for_runners(holder, RUNNERS)
        early = [process.poll() for process in processes]
        await holder.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    outputs = [process.communicate(timeout=60) for process in processes]
    assert early == [None] * RUNNERS, outputs
    assert waiting == RUNNERS  # each one polling the lock
    assert [process.returncode for process in processes] == [0] * RUNNERS, outputs
    assert sorted(stdout.strip() for stdout, _ in outputs) == sorted(
        ["[]", "[]", str(MIGRATION_IDS)]
    )
    assert await recorded(postgres_url) == RECORDED


async def test_failed_migration_names_it_and_rolls_it_back(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_id = broken_migrations(tmp_path / "migrations", monkeypatch)
    with pytest.raises(MigrationError) as caught:
        await migrate_database(Settings(database_url=postgres_url))
    assert str(caught.value) == (
        f'migration {broken_id} of apiclub failed: relation "task" already exists; '
        "fix the migration or restore the database"
    )
    assert await recorded(postgres_url) == RECORDED
    assert "side_effect" not in await tables(postgres_url)


def run_piccolo_forwards(url: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PICCOLO_CONF"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("piccolo")), "migrations", "forwards", "all"],
        cwd=REPO,
        env={**env, "APICLUB_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_piccolo_cli_agrees_with_migrate(postgres_url: str) -> None:
    assert asyncio.run(migrate_database(Settings(database_url=postgres_url))) == MIGRATION_IDS
    result = run_piccolo_forwards(postgres_url)
    assert result.returncode == 0, result.stderr
    assert "No migrations need to be run" in result.stdout


def test_migrate_agrees_with_piccolo_cli(postgres_url: str) -> None:
    result = run_piccolo_forwards(postgres_url)
    assert result.returncode == 0, result.stderr
    assert asyncio.run(migrate_database(Settings(database_url=postgres_url))) == []
