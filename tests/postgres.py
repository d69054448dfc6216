"""A real PostgreSQL server for the tests: Debian's `postgresql`, private and on a free port.

Each server gets its own data directory (initdb), a free port on 127.0.0.1 and its own unix
socket directory, so two test runs at once never meet. PostgreSQL refuses to run as root: as
root, the server runs as the `postgres` system user that Debian's package creates. The
superuser connects over the private socket without a password; the application's user
connects over TCP with a password (scram-sha-256), as apiclub does in production.

Fixtures (import them in a conftest.py, see `__all__`):
    postgres          one server for the whole session; never stop it in a test
    postgres_url      a fresh, empty database on that server for one test, dropped after
    private_postgres  a server of the test's own, which it may stop, crash and restart
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.tools import apt_fix, missing

__all__ = ["Postgres", "postgres", "postgres_url", "private_postgres", "running_postgres"]

SECONDS = 1.0
START_TIMEOUT = 30 * SECONDS
COMMAND_TIMEOUT = 60 * SECONDS
SERVER_USER = "postgres"
"""The system user the server runs as when the tests run as root (initdb refuses root)."""
SUPERUSER = "postgres"
"""The database superuser initdb creates; it connects over the private socket only."""
APP_USER = "apiclub"
APP_DATABASE = "apiclub"
INSTALL_HINT = apt_fix("postgresql")

StopMode = Literal["smart", "fast", "immediate"]
"""pg_ctl's shutdown modes: wait for clients, disconnect them, or crash (recovery at start)."""


def find_bin_dir() -> Path | None:
    """Debian's server binaries (not on PATH): /usr/lib/postgresql/<newest>/bin."""
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if path.parent.name == "bin" and path.parent.parent.name.isdigit()
    ]
    return max(candidates, key=lambda path: int(path.parent.name), default=None)


def missing_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    if find_bin_dir() is None:
        return f"the PostgreSQL server is not installed ({INSTALL_HINT})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"no '{SERVER_USER}' system user to run the server as root ({INSTALL_HINT})"
    return None


def free_port() -> int:
    """A port nobody listens on right now (bound to port 0 of 127.0.0.1, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    """One private PostgreSQL server: its files, port, and the application's credentials."""

    bin_dir: Path
    root: Path
    """Holds data/ (the cluster), socket/ and server.log; removed at the end."""
    port: int
    user: str = APP_USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    """Random per server, so a test can look for it in logs and error messages."""
    database: str = APP_DATABASE

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """`postgresql://user:pass@127.0.0.1:PORT/db`, what APICLUB_DATABASE_URL takes."""
        return self.url_for(self.database)

    def url_for(self, database: str, *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def start(self) -> None:
        """Start the server (pg_ctl waits until it accepts connections)."""
        self._pg_ctl("start", "--wait", f"--timeout={int(START_TIMEOUT)}", "-l", self.log_file)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server; `immediate` is a crash (no checkpoint; recovery at next start)."""
        self._pg_ctl("stop", "--wait", f"--mode={mode}")

    def restart(self) -> None:
        """Start again on the same port, data intact (a stopped server first)."""
        if self.is_running():
            self.stop()
        self.start()

    def is_running(self) -> bool:
        result = self._run([self.bin_dir / "pg_ctl", "status", "-D", self.data_dir], check=False)
        return result.returncode == 0

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run `sql` as the superuser over the private socket; return psql's unaligned output."""
        command: list[str | Path] = [
            self.bin_dir / "psql",
            *("-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", database),
            *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql),
        ]
        return self._run(command).stdout

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by the application's user; return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, disconnecting its clients (PostgreSQL 13+)."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _pg_ctl(self, *arguments: str | Path) -> None:
        self._run([self.bin_dir / "pg_ctl", *arguments, "-D", self.data_dir])

    def _run(
        self, command: list[str | Path], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(part) for part in command],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            # As root, drop to the server's user (initdb and postgres refuse root).
            user=_server_user(),
            group=_server_user(),
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, command))} failed ({result.returncode}): "
                f"{result.stderr.strip()}\n--- server log ---\n{self.log()[-4000:]}"
            )
        return result


def _server_user() -> str | None:
    return SERVER_USER if os.geteuid() == 0 else None


def _server_settings(port: int, socket_dir: Path) -> str:
    return "\n".join(
        [
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{socket_dir}'",
            # Tests survive a crash of the server, not of the machine: committed data is in the
            # OS page cache either way, and skipping fsync saves seconds per test run.
            "fsync = off",
            "full_page_writes = off",
            # Room for several apiclub processes, each with its own connection pool.
            "max_connections = 200",
            "log_min_messages = warning",
            "",
        ]
    )


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """initdb a new cluster, start it on a free port, create the app's user and database."""
    bin_dir = find_bin_dir()
    reason = missing_reason()
    if bin_dir is None or reason is not None:
        missing("the PostgreSQL server", reason or INSTALL_HINT)
    # Not pytest's tmp_path: it is 0700 and owned by root, out of the server user's reach.
    root = Path(tempfile.mkdtemp(prefix="apiclub-postgres-"))
    root.chmod(0o755)
    server = Postgres(bin_dir=bin_dir, root=root, port=free_port())
    try:
        for folder in (server.data_dir, server.socket_dir):
            folder.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(folder, user=SERVER_USER, group=SERVER_USER)
        if os.geteuid() == 0:
            shutil.chown(root, user=SERVER_USER, group=SERVER_USER)
        server._run(
            [
                bin_dir / "initdb",
                *("-D", server.data_dir, "-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"),
                *("--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"),
            ]
        )
        with (server.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_server_settings(server.port, server.socket_dir))
        server.start()
        server.psql(f"CREATE ROLE \"{server.user}\" LOGIN PASSWORD '{server.password}'")
        server.create_database(server.database)
        yield server
    finally:
        if server.data_dir.joinpath("postmaster.pid").exists():
            server._pg_ctl("stop", "--wait", "--mode=immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One server for the session. Tests must not stop it: use `private_postgres` for that."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: Postgres) -> Iterator[str]:
    """A fresh empty database on the session's server, for one test; dropped after it."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture
def private_postgres() -> Iterator[Postgres]:
    """A server of this test's own (~1 s to initdb and start), free to stop and restart."""
    with running_postgres() as server:
        yield server
