"""`apiclub migrate --database-url` as an operator runs it, against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.db.migrations import MIGRATION_IDS
from tests.postgres import Postgres, postgres, postgres_url
from tests.processes import run_apiclub, start_apiclub

__all__ = ["postgres", "postgres_url"]


@pytest.mark.anyio
async def test_migrate_from_three_processes_applies_once(postgres_url: str, tmp_path: Path) -> None:
    processes = [
        start_apiclub("migrate", "--database-url", postgres_url, data_dir=tmp_path / f"d{i}")
        for i in range(3)
    ]
    outputs = [process.communicate(timeout=90) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert sorted(stdout.split(":")[0] for stdout, _ in outputs) == [
        "applied 0 migration(s)",
        "applied 0 migration(s)",
        f"applied {len(MIGRATION_IDS)} migration(s)",
    ]
    assert not any((tmp_path / f"d{i}" / "api.db").exists() for i in range(3))
    connection = await asyncpg.connect(postgres_url)
    try:
        names = [row["name"] for row in await connection.fetch("SELECT name FROM migration")]
    finally:
        await connection.close()
    assert sorted(names) == sorted(MIGRATION_IDS)


def test_migrate_with_a_wrong_password_is_one_line_without_it(
    postgres: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    wrong = "not-the-" + postgres.password
    result = run_apiclub(
        "migrate", "--database-url", postgres.url_for(database, password=wrong), data_dir=tmp_path
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("apiclub: error: ")
    assert "password authentication failed" in line
    assert wrong not in result.stderr + result.stdout
    assert postgres.password not in result.stderr + result.stdout


def test_migrate_reads_the_database_url_from_a_file_so_ps_never_shows_it(
    postgres: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "database-url"
    secret.write_text(postgres_url + "\n")
    secret.chmod(0o600)
    process = start_apiclub("migrate", "--database-url-file", str(secret), data_dir=tmp_path)
    command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    assert "applied" in stdout
    assert postgres.password.encode() not in command_line
    assert postgres.password not in stdout + stderr
    assert not (tmp_path / "api.db").exists()  # PostgreSQL, not a SQLite fallback


def test_a_database_url_file_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path) -> None:
    result = run_apiclub(
        "migrate", "--database-url-file", str(tmp_path / "nope"), data_dir=tmp_path
    )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert "APICLUB_DATABASE_URL_FILE=" in line and "cannot be read" in line


def test_help_says_the_url_flag_shows_in_ps() -> None:
    result = run_apiclub("serve", "--help", data_dir=Path("unused"))
    assert result.returncode == 0
    assert "--database-url-file" in result.stdout
    assert "`ps`" in " ".join(result.stdout.split())
