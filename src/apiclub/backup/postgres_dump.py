"""The PostgreSQL part of a snapshot: `pg_dump`'s custom format, and `pg_restore` to check it.

The password never goes on a command line (other users can read those in `/proc`): the URL is
split into libpq's options and the password is passed in `PGPASSWORD`, to the child alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from apiclub.errors import BackupError
from apiclub.settings import redact_url
from apiclub.units import HOURS

DUMP_TIMEOUT = 1 * HOURS
INSTALL_HINT = "install PostgreSQL's client tools (Debian: apt-get install postgresql-client)"


def connection_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq options for `url` (no password), and the environment that carries the password."""
    parts = urlsplit(url)
    args = [f"--host={parts.hostname}", f"--port={parts.port or 5432}"]
    if parts.username:
        args.append(f"--username={unquote(parts.username)}")
    args.append(f"--dbname={unquote(parts.path.lstrip('/'))}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    query = parse_qs(parts.query)
    password = unquote(parts.password) if parts.password else query.get("password", [None])[0]
    if password:
        env["PGPASSWORD"] = password
    if sslmode := query.get("sslmode", [None])[0]:
        env["PGSSLMODE"] = sslmode
    return args, env


def manual_command(url: str, out: Path) -> str:
    """The command an operator can run instead, password left for them to supply."""
    args, _ = connection_args(url)
    return f"PGPASSWORD=... pg_dump --format=custom --file={out} {' '.join(args)}"


def dump(url: str, out: Path) -> None:
    """Dump the database at `url` into `out` (custom format).

    Raises:
        BackupError: pg_dump is missing or failed; the message says what to run by hand.
    """
    tool = shutil.which("pg_dump")
    if tool is None:
        raise BackupError(
            f"pg_dump is not installed, so the PostgreSQL database cannot be dumped: "
            f"{INSTALL_HINT}, or run `{manual_command(url, Path('apiclub.dump'))}` "
            "yourself"
        )
    args, env = connection_args(url)
    result = _run([tool, "--format=custom", "--no-owner", f"--file={out}", *args], env)
    if result.returncode != 0:
        raise BackupError(
            f"pg_dump of {redact_url(url)} failed: {_last_line(result.stderr)}; "
            "check that PostgreSQL runs and this user may read the database"
        )
    out.chmod(0o600)


def read_state(url: str) -> list[str]:
    """The migrations recorded in the database (Piccolo's `migration` table), via psql."""
    tool = shutil.which("psql")
    if tool is None:
        return []
    args, env = connection_args(url)
    result = _run(
        [tool, "--no-psqlrc", "-At", "-c", "SELECT name FROM migration ORDER BY id", *args], env
    )
    return result.stdout.split() if result.returncode == 0 else []


def check_dump(path: Path) -> None:
    """`pg_restore --list`: the dump is complete and readable.

    Raises:
        BackupError: it is not.
    """
    tool = shutil.which("pg_restore")
    if tool is None:
        raise BackupError(f"pg_restore is not installed to check {path}: {INSTALL_HINT}")
    result = _run([tool, "--list", str(path)], dict(os.environ))
    if result.returncode != 0:
        raise BackupError(f"the PostgreSQL dump {path} is unreadable: {_last_line(result.stderr)}")


def restore_command(url: str, dump_path: Path) -> str:
    """What an operator runs to load a snapshot's dump into an empty database."""
    args, _ = connection_args(url)
    return f"PGPASSWORD=... pg_restore --clean --if-exists --no-owner {' '.join(args)} {dump_path}"


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 (our own arguments, no shell)
            command, env=env, capture_output=True, text=True, timeout=DUMP_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{Path(command[0]).name} failed to run: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
