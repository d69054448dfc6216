"""The `apiclub` command as an operator runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.migrations import MIGRATION_IDS
from tests.processes import Served, run_apiclub, served, start_apiclub
from tests.tools import require_tool


def apiclub(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    return start_apiclub(*args, data_dir=data_dir)


def run(*args: str, data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_apiclub(*args, data_dir=data_dir, timeout=timeout)


@pytest.fixture
def served_process(tmp_path: Path) -> Iterator[Served]:
    """`apiclub serve` on a free port, redirect listener off."""
    with served(tmp_path) as running:
        yield running


def get(url: str, cafile: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def test_serve_answers_over_verified_tls_and_stops_cleanly_on_sigterm(
    served_process: Served, tmp_path: Path
) -> None:
    process, port = served_process.process, served_process.port
    root = run("ca", "path", data_dir=tmp_path).stdout.strip()
    assert Path(root) == tmp_path / "ca" / "root.pem"
    assert get(f"https://localhost:{port}/", Path(root)) == b'{"status":"ok"}'
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 0, served_process.log()
    assert "127.0.0.1:" in served_process.log()  # the access log names the client address


def test_sigint_also_stops_cleanly(served_process: Served) -> None:
    process = served_process.process
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_failed_migration_exits_1_naming_the_migration(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with sqlite3.connect(tmp_path / "api.db") as db:
        db.execute("CREATE TABLE task (conflicting TEXT)")
    result = run("serve", "--https-port", "0", "--http-port", "0", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("apiclub: error: migration ")
    assert "already exists" in last


@pytest.mark.parametrize("attempt", range(3))
def test_migrate_from_three_processes_at_once_applies_once(tmp_path: Path, attempt: int) -> None:
    # Fresh files race on switching to WAL as well as on the migration lock.
    processes = [apiclub("migrate", data_dir=tmp_path) for _ in range(3)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert sorted(stdout.split(":")[0] for stdout, _ in outputs) == [
        "applied 0 migration(s)",
        "applied 0 migration(s)",
        f"applied {len(MIGRATION_IDS)} migration(s)",
    ]
    with sqlite3.connect(tmp_path / "api.db") as db:
        applied = db.execute("SELECT name FROM migration").fetchall()
    assert len(applied) == len(MIGRATION_IDS)


def test_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--https-port", str(port), "--http-port", "0", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"apiclub: error: port {port} on 127.0.0.1 is already in use: stop the program using it "
        f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port with "
        "--https-port/APICLUB_HTTPS_PORT"
    )


def test_missing_certificate_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = run(
        "serve",
        "--tls",
        "files",
        "--cert-file",
        str(missing),
        "--key-file",
        str(missing),
        "--https-port",
        "0",
        "--http-port",
        "0",
        data_dir=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("apiclub: error: ")
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--https-port", "abc"), "APICLUB_HTTPS_PORT='abc' is not a port (0-65535)"),
        (("--tls", "maybe"), "APICLUB_TLS='maybe' is not one of auto, acme, internal, files, off"),
        (("--tls", "files"), "APICLUB_TLS=files needs APICLUB_CERT_FILE and APICLUB_KEY_FILE"),
        (("--domain", "bad_name!"), "domain 'bad_name!' is not a valid DNS name"),
        (("--hsts", "always"), "APICLUB_HSTS='always' is not one of auto"),
        (("--rate-limit", "lots"), "APICLUB_RATE_LIMIT='lots' is not a rate: give REQUESTS/UNIT"),
        (("--workers", "0"), "APICLUB_WORKERS=0 is not a process count (1-64)"),
        (
            ("--database-url", "mysql://app:s3cret@db/apiclub"),
            "APICLUB_DATABASE_URL='mysql://app:***@db/apiclub' is not a PostgreSQL URL",
        ),
    ],
)
def test_bad_settings_exit_1_naming_the_setting(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run("serve", *args, data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"apiclub: error: {message}")


def test_flag_wins_over_environment(tmp_path: Path) -> None:
    from apiclub.cli import build_parser, flag_values
    from apiclub.settings import Settings

    args = build_parser().parse_args(
        ["serve", "--https-port", "9443", "--domain", "a.test", "--domain", "b.test"]
    )
    settings = Settings.from_env({"APICLUB_HTTPS_PORT": "1234", **flag_values(args)})
    assert settings.https_port == 9443
    assert settings.domains == ("a.test", "b.test")


def test_hsts_and_rate_limit_flags_win_over_their_variables() -> None:
    from apiclub.cli import build_parser, flag_values
    from apiclub.settings import HstsMode, RateLimit, Settings

    args = build_parser().parse_args(
        ["serve", "--hsts", "off", "--hsts-max-age", "600", "--rate-limit", "off"]
    )
    environ = {"APICLUB_HSTS": "on", "APICLUB_HSTS_MAX_AGE": "1", "APICLUB_RATE_LIMIT": "1/day"}
    assert Settings.from_env(environ).rate_limit == RateLimit(1, "day")
    settings = Settings.from_env({**environ, **flag_values(args)})
    assert (settings.hsts, settings.hsts_max_age, settings.rate_limit) == (HstsMode.OFF, 600, None)


def test_privileged_port_without_the_capability_says_how_to_fix_it(tmp_path: Path) -> None:
    require_tool("setpriv", "util-linux")
    # Root without CAP_NET_BIND_SERVICE, as a plain user would run `make prod`.
    result = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-net_bind_service",
            sys.executable,
            "-m",
            "apiclub",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--https-port",
            "443",
            "--http-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "apiclub: error: permission denied listening on 127.0.0.1:443: ports below 1024 need "
        "root or CAP_NET_BIND_SERVICE (run with sudo, use deploy/systemd/apiclub.service, or "
        "choose a port above 1023 with --https-port/APICLUB_HTTPS_PORT)"
    )


def status_and_hsts(url: str, cafile: Path) -> tuple[int, str | None]:
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["strict-transport-security"]
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers["strict-transport-security"]


def test_serve_flags_turn_on_hsts_and_the_rate_limit(tmp_path: Path) -> None:
    flags = ("--hsts", "on", "--hsts-max-age", "600", "--rate-limit", "2/minute")
    with served(tmp_path, *flags) as api:
        answers = [status_and_hsts(f"{api.url}/task/", api.root) for _ in range(3)]
    assert answers == [(200, "max-age=600"), (200, "max-age=600"), (429, "max-age=600")]


def test_serve_without_those_flags_sends_no_hsts_for_localhost_and_never_429(
    served_process: Served,
) -> None:
    answers = {
        status_and_hsts(f"{served_process.url}/task/", served_process.root) for _ in range(5)
    }
    assert answers == {(200, None)}


@pytest.mark.parametrize("module", ["apiclub", "apiclub.cli"])
def test_both_module_entry_points_print_the_usage(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: apiclub")


def test_a_module_entry_point_with_a_bad_command_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "apiclub.cli", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nonsense" in result.stderr
