"""`--replicate sftp://...` against a real OpenSSH server on loopback (tests/backup/sftpserver).

The machine-loss test runs for sftp in test_replication.py beside file:// and S3; here: what
apiclub hands Litestream (the host key, the key file, the password, never on a command line),
and each way an SFTP replica goes wrong, each with one clear line.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup.helpers import require_tool, task_ids
from tests.backup.sftpserver import SftpServer, sftp_server
from tests.processes import run_apiclub, served

PASSWORD = "sftp-pa$$word-not-on-any-command-line"


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    require_tool("litestream")
    with sftp_server(tmp_path / "sftp") as server:
        yield server


def _wait_for_log(server: object, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := server.log()):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"no {text!r} in the log: {log[-2000:]}"
        time.sleep(0.1)
    return log


def _command_lines() -> str:
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return "\n".join(lines)


def test_an_sftp_replica_checks_the_host_key_and_restores(tmp_path: Path, sftp: SftpServer) -> None:
    import ssl

    import httpx

    url = sftp.url("db")
    with served(tmp_path / "data", "--replicate", url) as server:
        log = _wait_for_log(server, "snapshot complete")
        context = ssl.create_default_context(cafile=str(server.root))
        with httpx.Client(verify=context) as client:
            made = client.post(f"{server.url}/task/", json={"name": "over ssh"}).json()
        time.sleep(2.5)
        status = run_apiclub("replication", "--replicate", url, data_dir=tmp_path / "data")
    assert "host key not verified" not in log  # Litestream's warning when it trusts anyone
    assert status.returncode == 0 and "in step" in status.stdout, status.stdout + status.stderr
    assert list((sftp.root / "db").rglob("*.ltx")), "nothing reached the SFTP server"
    restored = run_apiclub("restore", "--from", url, data_dir=tmp_path / "restored")
    assert restored.returncode == 0, restored.stderr
    assert made["id"] in task_ids(tmp_path / "restored/api.db")


def test_a_server_with_another_host_key_is_refused(tmp_path: Path, sftp: SftpServer) -> None:
    """The twin: a key file that is not the server's (a man in the middle) gets nothing."""
    impostor = sftp.url("db", host_key=sftp.client_key.with_suffix(".pub"))
    with served(tmp_path / "data", "--replicate", impostor) as server:
        log = _wait_for_log(server, "host key mismatch")
    assert "ERROR" in log
    assert not list((sftp.root / "db").rglob("*.ltx"))
    refused = run_apiclub("restore", "--from", impostor, data_dir=tmp_path / "r")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert (
        "litestream could not restore" in refused.stderr and "host key mismatch" in refused.stderr
    )


def test_a_key_the_server_refuses_shows_in_the_log_status_and_restore(
    tmp_path: Path, sftp: SftpServer
) -> None:
    stranger = sftp.url("db", key=sftp.stranger_key)
    with served(tmp_path / "data", "--replicate", stranger) as server:
        log = _wait_for_log(server, "unable to authenticate")
    line = next(line for line in log.splitlines() if "unable to authenticate" in line)
    assert "apiclub.litestream" in line and "ERROR" in line, line
    status = run_apiclub("replication", "--replicate", stranger, data_dir=tmp_path / "data")
    assert status.returncode == 1 and status.stderr.count("\n") == 1, status.stderr
    assert "cannot read the replica" in status.stderr
    assert "unable to authenticate" in status.stderr
    refused = run_apiclub("restore", "--from", stranger, data_dir=tmp_path / "r")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "unable to authenticate" in refused.stderr
    assert not (tmp_path / "r/api.db").exists()


def test_a_wrong_password_reaches_the_server_and_no_command_line_or_log(
    tmp_path: Path, sftp: SftpServer
) -> None:
    """OpenSSH checks passwords against the system's accounts, which a test does not set: a
    password login fails, and the server's log shows the password was the method tried."""
    url = sftp.url("db").split("&key-path=")[0]  # the host key, no key file: a password only
    keys = tmp_path / "sftp.env"
    keys.write_text(f"LITESTREAM_SFTP_PASSWORD='{PASSWORD}'\n")
    keys.chmod(0o600)
    flags = ("--replicate", url, "--replicate-env-file", str(keys))
    with served(tmp_path / "data", *flags) as server:
        log = _wait_for_log(server, "unable to authenticate")
        commands = _command_lines()
        configs = list(Path(tempfile.gettempdir()).glob("apiclub-litestream-*/litestream.yml"))
        mine = [c for c in configs if PASSWORD in c.read_text()]
    assert f"Failed password for {sftp.user}" in sftp.log()
    assert PASSWORD not in log and PASSWORD not in commands
    assert mine and all(c.stat().st_mode & 0o777 == 0o600 for c in mine)
    assert json.loads(mine[0].read_text())["dbs"][0]["replica"]["password"] == PASSWORD
    refused = run_apiclub("restore", "--from", url, *flags[2:], data_dir=tmp_path / "r")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert PASSWORD not in refused.stderr


def test_an_unreachable_server_fails_a_restore_in_one_line(
    tmp_path: Path, sftp: SftpServer
) -> None:
    nobody = sftp.url("db").replace(f":{sftp.port}/", ":9/")  # port 9: discard, not served
    refused = run_apiclub("restore", "--from", nobody, data_dir=tmp_path / "r")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "connection refused" in refused.stderr


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "does not say which server to trust"),
        ("?host-key-path=/x&port=2", "'port' is not a parameter of an sftp replica"),
    ],
)
def test_an_sftp_url_without_a_host_key_stops_the_start(
    tmp_path: Path, query: str, says: str
) -> None:
    result = run_apiclub(
        "serve",
        "--https-port",
        "0",
        "--http-port",
        "0",
        "--replicate",
        f"sftp://backup@127.0.0.1/srv/db{query}",
        data_dir=tmp_path / "data",
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
