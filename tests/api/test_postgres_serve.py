"""A real `apiclub serve --database-url` whose database fails: one line, exit 1, no password."""

from __future__ import annotations

from pathlib import Path

from apiclub.db.postgres import START_RETRY_FOR
from tests.postgres import Postgres, private_postgres
from tests.processes import run_apiclub

__all__ = ["private_postgres"]  # fixtures used by the tests below

SERVE = ("serve", "--https-port", "0", "--http-port", "0")


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_down_at_start_exits_1_after_retrying_with_one_line(
    private_postgres: Postgres, tmp_path: Path
) -> None:
    private_postgres.stop()
    result = run_apiclub(
        *SERVE,
        "--database-url",
        private_postgres.url,
        data_dir=tmp_path / "data",
        timeout=START_RETRY_FOR + 60,
    )
    assert result.returncode == 1, result.stderr
    line = last_line(result.stderr)
    address = f"127.0.0.1:{private_postgres.port}"
    assert line.startswith(
        f"apiclub: error: PostgreSQL at {address} not reachable for {START_RETRY_FOR:g} s ("
    )
    assert line.endswith(
        f"start it there or fix APICLUB_DATABASE_URL=postgresql://apiclub:***@{address}/apiclub "
        "(host, port, user, password, database)"
    )
    assert result.stderr.count("not reachable (attempt") >= 2
    assert "Traceback" not in result.stderr
    # The whole output, every log line and the error included, never holds the password.
    assert private_postgres.password not in result.stderr + result.stdout


def test_a_wrong_password_exits_1_at_once_without_it(
    private_postgres: Postgres, tmp_path: Path
) -> None:
    wrong = "wrong-" + private_postgres.password
    url = private_postgres.url_for(private_postgres.database, password=wrong)
    result = run_apiclub(*SERVE, "--database-url", url, data_dir=tmp_path / "data")
    assert result.returncode == 1, result.stderr
    assert "refused the connection (password authentication failed" in last_line(result.stderr)
    assert wrong not in result.stderr + result.stdout
    assert private_postgres.password not in result.stderr + result.stdout
