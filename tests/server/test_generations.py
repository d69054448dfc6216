"""The parent of `apiclub serve` as systemd and an operator see it: sd_notify, `apiclub reload`.

systemd's side of the notify protocol is a datagram socket; this test binds one (abstract
namespace, as systemd's is) and reads what apiclub sends, with the sender's pid
(SCM_CREDENTIALS), as systemd does to enforce `NotifyAccess=main`.
"""

from __future__ import annotations

import secrets
import signal
import socket
import struct
import time
from pathlib import Path

from tests.processes import run_apiclub
from tests.reliability.deploy_load import clean_env, serving

WAIT = 30.0


def receive(sock: socket.socket, until: str) -> list[tuple[int, dict[str, str]]]:
    """Messages (sender pid, fields) up to and including one with the field `until`."""
    received = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        received.append((pid, fields))
        if until in fields:
            return received
    raise AssertionError(f"no {until} in {received}")


def test_systemd_hears_ready_reloading_and_stopping_from_the_parent_only(tmp_path: Path) -> None:
    name = f"apiclub-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        env = clean_env(tmp_path, NOTIFY_SOCKET="@" + name)
        with serving(tmp_path, "--workers", "2", env=env) as server:
            parent = server.process.pid
            started = receive(notify, "READY")
            server.process.send_signal(signal.SIGHUP)
            reloaded = receive(notify, "READY")
            server.process.send_signal(signal.SIGTERM)
            stopped = receive(notify, "STOPPING")
            assert server.process.wait(WAIT) == 0
    assert [pid for pid, _ in started + reloaded + stopped] == [parent] * len(
        started + reloaded + stopped
    )
    assert started[-1][1]["MAINPID"] == str(parent)
    assert started[-1][1]["STATUS"].startswith("serving, generation 0")
    assert reloaded[0][1]["RELOADING"] == "1"
    assert reloaded[-1][1]["STATUS"].startswith("serving, generation 1")
    assert stopped[-1][1]["STOPPING"] == "1"


def test_a_failed_reload_tells_systemd_it_still_serves_and_why(tmp_path: Path) -> None:
    name = f"apiclub-test-{secrets.token_hex(6)}"
    env_file = tmp_path / "apiclub.env"
    env_file.write_text("APICLUB_LOG_LEVEL=INFO\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        env = clean_env(tmp_path, NOTIFY_SOCKET="@" + name, APICLUB_ENV_FILE=str(env_file))
        with serving(tmp_path, env=env) as server:
            receive(notify, "READY")
            env_file.write_text("APICLUB_LOG_LEVEL=LOUD\n")
            server.process.send_signal(signal.SIGHUP)
            reloaded = receive(notify, "READY")
    status = reloaded[-1][1]["STATUS"]
    assert status.startswith("reload to generation 1 failed: APICLUB_LOG_LEVEL='LOUD'"), status
    assert status.endswith("still serving"), status


def test_apiclub_reload_signals_the_running_server(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        result = run_apiclub("reload", data_dir=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"sent SIGHUP to apiclub (pid {server.process.pid})" in result.stdout
        server.wait_for_log("generation 1 serving (pids")
        assert (tmp_path / "apiclub.pid").read_text().strip() == str(server.process.pid)
    assert not (tmp_path / "apiclub.pid").exists()


def test_apiclub_reload_without_a_server_is_one_line_naming_the_pid_file(tmp_path: Path) -> None:
    result = run_apiclub("reload", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"apiclub: error: cannot read the pid file {tmp_path}")


def test_apiclub_reload_with_a_stale_pid_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "apiclub.pid").write_text(f"{2**22 + 12345}\n")  # above pid_max: never running
    result = run_apiclub("reload", data_dir=tmp_path)
    assert result.returncode == 1
    assert "which is not running" in result.stderr
    assert (tmp_path / "apiclub.pid").exists()
