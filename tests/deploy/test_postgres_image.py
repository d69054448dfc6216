"""deploy/postgres/entrypoint.sh, run on this machine as the image runs it (Debian's server)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.deploy.helpers import REPO, clean_env, free_port
from tests.postgres import missing_reason
from tests.tools import missing

pytestmark = pytest.mark.anyio

ENTRYPOINT = REPO / "deploy" / "postgres" / "entrypoint.sh"
PASSWORD = "s3cret-Pass_word"


@pytest.fixture
def root() -> Iterator[Path]:
    reason = missing_reason()
    if reason is not None:
        missing("the PostgreSQL server", reason)
    # Traversable by the postgres user, which pytest's 0700 tmp_path is not.
    path = Path(tempfile.mkdtemp(prefix="apiclub-pgimage-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(root: Path, port: int, *args: str, **values: str) -> subprocess.Popen[str]:
    env = clean_env(PGDATA=str(root / "data"), PGPORT=str(port), **values)
    return subprocess.Popen(
        [str(ENTRYPOINT), *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


async def connect(port: int, password: str) -> asyncpg.Connection:
    url = f"postgresql://apiclub:{password}@127.0.0.1:{port}/apiclub"
    for _ in range(200):
        try:
            return await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.CannotConnectNowError):
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not accept connections within 20 s")


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGINT)  # the image's STOPSIGNAL: a fast shutdown
    _, errors = server.communicate(timeout=30)
    return errors


async def test_first_start_creates_the_app_user_and_its_database(root: Path) -> None:
    port = free_port()
    server = start(root, port, POSTGRES_PASSWORD=PASSWORD, POSTGRES_NETWORK="127.0.0.1/32")
    try:
        connection = await connect(port, PASSWORD)
        try:
            assert await connection.fetchval("SELECT current_user") == "apiclub"
        finally:
            await connection.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(f"postgresql://apiclub:wrong@127.0.0.1:{port}/apiclub")
        # The superuser has no password and no network access at all.
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(f"postgresql://postgres:x@127.0.0.1:{port}/postgres")
    finally:
        errors = stop(server)
    assert server.returncode == 0, errors
    assert "created user apiclub and database apiclub" in errors
    assert PASSWORD not in errors


def test_first_start_without_a_password_stops_with_the_fix(root: Path) -> None:
    result = subprocess.run(
        [str(ENTRYPOINT)],
        env=clean_env(PGDATA=str(root / "data"), PGPORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "POSTGRES_PASSWORD is empty: set it in .env" in result.stderr


@pytest.mark.parametrize(
    ("key", "value"), [("POSTGRES_USER", "x; DROP"), ("POSTGRES_PASSWORD", "it's")]
)
def test_values_that_would_inject_sql_are_refused(root: Path, key: str, value: str) -> None:
    values = {"POSTGRES_PASSWORD": PASSWORD, key: value}
    result = subprocess.run(
        [str(ENTRYPOINT)],
        env=clean_env(PGDATA=str(root / "data"), PGPORT=str(free_port()), **values),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{key}='{value}' is not" in result.stderr


async def current_setting(port: int, name: str) -> str:
    connection = await connect(port, PASSWORD)
    try:
        return str(await connection.fetchval("SELECT current_setting($1)", name))
    finally:
        await connection.close()


async def test_arguments_reach_the_server_as_settings(root: Path) -> None:
    port = free_port()
    values = {"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_NETWORK": "127.0.0.1/32"}
    server = start(root, port, "-c", "listen_addresses=127.0.0.1", **values)
    try:
        assert await current_setting(port, "listen_addresses") == "127.0.0.1"
    finally:
        errors = stop(server)
    assert server.returncode == 0, errors
    # The next start (the cluster exists) without arguments: postgresql.conf's value again.
    server = start(root, port, **values)
    try:
        assert await current_setting(port, "listen_addresses") == "*"
    finally:
        errors = stop(server)
    assert server.returncode == 0, errors


def test_an_unknown_server_setting_stops_the_server_naming_it(root: Path) -> None:
    result = subprocess.run(
        [str(ENTRYPOINT), "-c", "no_such_setting=1"],
        env=clean_env(
            PGDATA=str(root / "data"), PGPORT=str(free_port()), POSTGRES_PASSWORD=PASSWORD
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert 'unrecognized configuration parameter "no_such_setting"' in result.stderr
