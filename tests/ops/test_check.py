"""`apiclub check` finds each problem a start would trip on, and passes its fixed twin."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from tests.ops.helpers import free_port, served
from tests.processes import run_apiclub
from tests.tools import require_tool

pytestmark = pytest.mark.timeout(120)


def check(data: Path, *args: str) -> tuple[int, list[str]]:
    ports = ("--https-port", str(free_port()), "--http-port", "0")
    result = run_apiclub("check", *ports, *args, data_dir=data)
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert all(line[:5] in ("OK   ", "WARN ", "FAIL ") for line in lines), "one line per finding"
    return result.returncode, lines


def lines_with(lines: list[str], level: str, text: str) -> list[str]:
    return [line for line in lines if line.startswith(level) and text in line]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def migrated(data: Path) -> Path:
    assert run_apiclub("migrate", data_dir=data).returncode == 0
    return data


def test_a_bad_value_fails(data: Path) -> None:
    result = run_apiclub("check", "--https-port", "abc", data_dir=data)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL settings: APICLUB_HTTPS_PORT='abc' is not a port (0-65535)"
    ]


def test_good_values_pass(migrated: Path) -> None:
    status, lines = check(migrated)
    assert status == 0, lines
    assert lines[0] == "OK   settings: values valid"
    assert not lines_with(lines, "FAIL", "")


def test_json_for_scripts(data: Path) -> None:
    bad = run_apiclub("check", "--https-port", "abc", "--json", data_dir=data)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["ok"] is False
    good = run_apiclub(
        "check", "--https-port", str(free_port()), "--http-port", "0", "--json", data_dir=data
    )
    body = json.loads(good.stdout)
    assert good.returncode == 0 and body["ok"] is True
    assert {f["level"] for f in body["findings"]} <= {"ok", "warn"}


def test_a_taken_port_fails_and_a_free_one_passes(data: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, lines = check(data, "--https-port", str(port))
        assert status == 1
        assert lines_with(lines, "FAIL", f"port {port} (--https-port): in use by another process")
    status, lines = check(data, "--https-port", str(port))
    assert status == 0, lines
    assert lines_with(lines, "OK", f"port {port} (--https-port): free")


def test_a_port_held_by_our_own_server_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data) as api:
        result = run_apiclub(
            "check", "--https-port", str(api.port), "--http-port", "0", data_dir=data
        )
    assert result.returncode == 0, result.stdout
    assert (
        f"OK   port {api.port} (--https-port): in use by the apiclub serving this data directory"
        in result.stdout
    )


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Root writes through modes: make the directory immutable instead."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield
        path.chmod(0o700)
        return
    chattr = require_tool("chattr", "e2fsprogs")
    made = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0 and "Operation not permitted" in made.stderr:
        # Root without CAP_LINUX_IMMUTABLE (root in a container): no way to refuse root's writes.
        pytest.skip("chattr +i needs CAP_LINUX_IMMUTABLE, which this root lacks")
    made.check_returncode()
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_an_unwritable_data_dir_fails(data: Path) -> None:
    with unwritable(data):
        status, lines = check(data)
    assert status == 1
    assert lines_with(lines, "FAIL", "not writable")
    status, lines = check(data)  # the twin: the same directory, writable again
    assert status == 0, lines
    assert lines_with(lines, "OK", "present, writable, mode 0700")


def test_a_data_dir_open_to_others_fails(data: Path) -> None:
    data.chmod(0o755)
    status, lines = check(data)
    assert status == 1
    assert lines_with(lines, "FAIL", f"mode 0755 lets others in (keys, database): chmod 700 {data}")


def test_a_corrupt_database_fails_and_a_sound_one_passes(migrated: Path) -> None:
    database = migrated / "api.db"
    status, lines = check(migrated)
    assert status == 0 and lines_with(lines, "OK", "opens, integrity ok"), lines
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        for i in range(200):
            connection.execute(
                "INSERT INTO task (name, created_at) VALUES (?, datetime())", (f"t{i}" * 20,)
            )
    connection.close()
    raw = bytearray(database.read_bytes())
    for page in range(1, len(raw) // page_size):  # every page after the schema garbled
        start = page * page_size + 8
        raw[start : (page + 1) * page_size] = b"\xff" * (page_size - 8)
    database.write_bytes(bytes(raw))
    status, lines = check(migrated)
    assert status == 1
    assert lines_with(lines, "FAIL", "restore it from a backup"), lines


def test_a_file_that_is_no_database_fails(data: Path) -> None:
    (data / "api.db").write_bytes(b"this is not SQLite\n" * 100)
    status, lines = check(data)
    assert status == 1
    assert lines_with(lines, "FAIL", "cannot be read (file is not a database)"), lines


def test_a_pending_migration_is_named_and_applied_ones_too(migrated: Path) -> None:
    with sqlite3.connect(migrated / "api.db") as connection:
        last = connection.execute("SELECT max(name) FROM migration").fetchone()[0]
        connection.execute("DELETE FROM migration WHERE name = ?", (last,))
    connection.close()
    status, lines = check(migrated)
    assert status == 0, "the start applies it: a warning, not a failure"
    assert lines_with(lines, "WARN", f"1 migration(s) pending, applied at start: {last}"), lines
    assert run_apiclub("migrate", data_dir=migrated).returncode == 0
    status, lines = check(migrated)
    assert lines_with(lines, "OK", "all 3 migration(s) applied:"), lines
    assert last in lines_with(lines, "OK", "applied")[0]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def files(tmp_path: Path, ca: trustme.CA, *names: str, **validity: datetime) -> tuple[str, ...]:
    leaf = ca.issue_cert(*names, **validity)
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    leaf.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return (
        "--tls",
        "files",
        "--cert-file",
        str(cert),
        "--key-file",
        str(key),
        "--domain",
        "localhost",
    )


def test_an_expired_certificate_fails(tmp_path: Path, data: Path, ca: trustme.CA) -> None:
    now = datetime.now(UTC)
    expired = files(
        tmp_path,
        ca,
        "localhost",
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    status, lines = check(data, *expired)
    assert status == 1
    assert lines_with(lines, "FAIL", "certificate localhost:"), lines
    assert "expired on" in lines_with(lines, "FAIL", "certificate localhost:")[0]
    fresh = files(tmp_path, ca, "localhost")
    status, lines = check(data, *fresh)
    assert status == 0, lines
    assert lines_with(lines, "OK", "certificate localhost: covers it")


def test_a_certificate_not_covering_a_name_fails(
    tmp_path: Path, data: Path, ca: trustme.CA
) -> None:
    other = files(tmp_path, ca, "other.example")
    status, lines = check(data, *other)
    assert status == 1
    assert lines_with(lines, "FAIL", "does not cover localhost (it names other.example)"), lines
    covering = files(tmp_path, ca, "other.example", "localhost")
    status, lines = check(data, *covering)
    assert status == 0, lines


def test_a_proxy_trusting_everyone_fails(data: Path) -> None:
    status, lines = check(data, "--trusted-proxy", "0.0.0.0/0")
    assert status == 1
    assert lines_with(lines, "FAIL", "trusted proxy: 0.0.0.0/0 trusts every client")
    status, lines = check(data, "--trusted-proxy", "10.0.0.5")
    assert status == 0 and lines_with(lines, "OK", "trusted proxy: 10.0.0.5/32"), lines


def test_acme_account_reported(data: Path) -> None:
    status, lines = check(data, "--domain", "api.example.com", "--acme-agree-tos")
    assert status == 0
    assert lines_with(
        lines, "WARN", "acme account: none yet for https://acme-v02.api.letsencrypt.org/directory"
    )


def test_the_systemd_unit_checks_before_it_serves() -> None:
    unit = (Path(__file__).resolve().parents[2] / "deploy/systemd/apiclub.service").read_text()
    lines = [line for line in unit.splitlines() if line.startswith(("ExecStartPre=", "ExecStart="))]
    assert lines == [
        "ExecStartPre=/opt/apiclub/bin/apiclub check",
        "ExecStart=/opt/apiclub/bin/apiclub serve",
    ]
