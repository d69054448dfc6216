"""A `systemctl restart` under socket activation fails no request; without it, requests fail.

systemd's `apiclub.socket` holds the listening socket across a restart of the service, so
connections made while no apiclub runs wait in the kernel's queue. `systemd-socket-activate`
(Debian's systemd) plays systemd here without systemd as PID 1: it binds the port and execs a
bash loop that holds the socket and runs `apiclub serve` twice with `LISTEN_FDS`, as systemd
runs the service again after a restart's stop. The twin restarts a bare `apiclub serve`
that binds its own port: the same load sees refused connections.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.reliability.deploy_load import (
    BANNER,
    LoadResult,
    assert_no_loss,
    clean_env,
    run_load,
    serving,
)
from tests.tools import require_tool

WAIT = 60.0
# Each run: LISTEN_PID must be the pid of the process that takes the sockets.
LOOP = 'for run in 1 2; do (LISTEN_PID=$BASHPID; export LISTEN_PID; exec "$@"); done'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def first_connection(port: int) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
            return
        except ConnectionRefusedError:  # not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_pid(data_dir: Path, other_than: int = 0) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            pid = int((data_dir / "apiclub.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and pid != other_than:
            return pid
        time.sleep(0.05)
    pytest.fail(f"no pid file in {data_dir}")


def test_a_restart_under_socket_activation_fails_no_request(tmp_path: Path) -> None:
    activate = require_tool("systemd-socket-activate", "systemd")
    port = free_port()
    env = clean_env(tmp_path)
    # It hands its children only the variables named with -E (and LISTEN_*).
    passed = [
        f"--setenv={name}" for name in sorted(env) if name in ("PATH", "HOME", "APICLUB_DATA_DIR")
    ]
    command = [activate, "-l", f"127.0.0.1:{port}", "--fdname=https", *passed, "bash", "-c", LOOP]
    command += ["bash", sys.executable, "-m", "apiclub", "serve", "--http-port", "0"]
    with tempfile.TemporaryFile("w+") as stderr:
        holder = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        assert holder.stdout is not None
        try:
            # systemd-socket-activate starts the service at the first connection.
            first_connection(port)
            first = holder.stdout.readline()
            assert BANNER.search(first), first
            assert f":{port}/" in first
            old = read_pid(tmp_path)

            def restart() -> None:
                os.kill(old, signal.SIGTERM)  # systemctl restart: stop, then start again
                while not BANNER.search(line := holder.stdout.readline()):  # type: ignore[union-attr]
                    assert line, "the second run printed no banner"

            result = run_load(lambda: port, tmp_path / "ca/root.pem", restart)
            new = read_pid(tmp_path, other_than=old)
        finally:
            holder.send_signal(signal.SIGTERM)
            if "new" in locals():
                os.kill(new, signal.SIGTERM)
            holder.wait(WAIT)
            holder.stdout.close()
            stderr.seek(0)
            log = stderr.read()
    assert new != old
    assert f"Running on https://127.0.0.1:{port}" in log
    assert_no_loss(result, tmp_path / "api.db", "restart under socket activation")


def test_the_same_restart_of_a_process_that_binds_its_own_port_fails_requests(
    tmp_path: Path,
) -> None:
    port = free_port()
    result = LoadResult()

    with serving(tmp_path / "a", "--https-port", str(port)) as first:
        root = first.root

        def restart() -> None:
            first.process.send_signal(signal.SIGTERM)
            first.process.wait(WAIT)
            # The new process reads the same CA: a copy of the first data directory.
            shutil.copytree(tmp_path / "a" / "ca", tmp_path / "b" / "ca")
            with serving(tmp_path / "b", "--https-port", str(port)):
                time.sleep(0.5)

        result = run_load(lambda: port, root, restart)
    sys.stdout.write(result.summary("bare restart, no socket activation (the twin)") + "\n")
    assert any("ConnectionRefusedError" in failure for failure in result.failures), result.failures[
        :5
    ]
