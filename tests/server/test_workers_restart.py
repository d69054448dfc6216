"""`apiclub serve --workers N` when a replacement cannot boot, and a stop that meets a fork.

The figures (a script): `.venv/bin/python -m tests.server.test_workers_restart [RUNS]`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from apiclub.server.workers import RestartBackoff
from tests.processes import Served, served, start_apiclub
from tests.server.test_workers import WAIT, children, pids_seen_serving, serving_pids, wait_for

SERVE_TWO = ("serve", "--https-port", "0", "--http-port", "0", "--workers", "2")
STOP_RUNS = 10
"""Starts stopped at once by SIGTERM to every process; each of 10 exited 1 before the fix."""


def get_root(server: Served, path: str = "/") -> int:
    context = ssl.create_default_context(cafile=str(server.root))
    return httpx.get(f"{server.url}{path}", verify=context, timeout=WAIT).status_code


@contextmanager
def database_turned_into_a_directory(data_dir: Path) -> Iterator[None]:
    """A database path that new processes cannot open; the running ones keep their file."""
    database = data_dir / "api.db"
    aside = data_dir / "api.db.aside"
    database.rename(aside)
    database.mkdir()
    try:
        yield
    finally:
        database.rmdir()
        aside.rename(database)


def test_a_replacement_that_cannot_boot_is_retried_while_the_other_serves(
    tmp_path: Path,
) -> None:
    with served(tmp_path, "--workers", "2") as server:
        victim, survivor = sorted(children(server.process.pid))
        with database_turned_into_a_directory(tmp_path):
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: "starting a new one in 1 s" in server.log(), "a failed boot")
            assert [get_root(server) for _ in range(5)] == [200] * 5
            wait_for(lambda: "starting a new one in 2 s" in server.log(), "a second one")
            assert asyncio.run(serving_pids(server, {survivor})) == {survivor}
            assert server.process.poll() is None
        wait_for(lambda: len(children(server.process.pid)) == 2, "a replacement that boots")
        (replacement,) = children(server.process.pid) - {survivor}
        wait_for(lambda: f"worker {replacement} serving" in server.log(), "it to serve")
        workers = {survivor, replacement}
        assert pids_seen_serving(server, workers) == workers
        assert get_root(server, "/task/") == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(WAIT) == 0, server.log()
        log = server.log()
    assert f"worker {victim} was killed by SIGKILL; starting a new one" in log
    failures = [line for line in log.splitlines() if "before it was ready: " in line]
    assert len(failures) >= 2
    assert all(str(tmp_path / "api.db") in line for line in failures)  # the worker's reason
    assert "Traceback" not in log


def test_sigterm_while_a_replacement_waits_to_retry_exits_0(tmp_path: Path) -> None:
    with served(tmp_path, "--workers", "2") as server:
        victim = min(children(server.process.pid))
        with database_turned_into_a_directory(tmp_path):
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: "starting a new one in 1 s" in server.log(), "a failed boot")
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(WAIT) == 0, server.log()
        assert "while stopping" not in server.log()


def stop_right_after_a_fork(data_dir: Path) -> tuple[int, str]:
    """Start two workers, SIGTERM every process as soon as one is forked: status and stderr."""
    with (data_dir / "stderr").open("w+") as stderr:
        process = start_apiclub(*SERVE_TWO, data_dir=data_dir, stderr=stderr)
        while not (workers := children(process.pid)) and process.poll() is None:
            pass  # as fast as possible: the window is the worker's first milliseconds
        # What systemd or a terminal's Ctrl-C does: the signal reaches every process.
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        stderr.seek(0)
        return process.returncode, stderr.read()


def test_a_stop_signal_right_after_a_fork_is_a_graceful_stop(tmp_path: Path) -> None:
    for run in range(STOP_RUNS):
        status, log = stop_right_after_a_fork(tmp_path)
        assert (run, status) == (run, 0), log


def test_the_restart_delay_doubles_to_its_cap() -> None:
    backoff = RestartBackoff(first=1, cap=60, healthy_after=30)
    assert [backoff.failed(now) for now in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_the_restart_delay_resets_after_a_replacement_served_long_enough() -> None:
    backoff = RestartBackoff(first=1, cap=60, healthy_after=30)
    backoff.failed(100)
    backoff.failed(101)
    assert not backoff.reset_if_healthy([50], now=200)  # ready before the last failure
    assert not backoff.reset_if_healthy([110], now=139)  # has not served long enough
    assert backoff.failed(140) == 4
    assert backoff.reset_if_healthy([150], now=180)
    assert backoff.failed(181) == 1


@pytest.mark.parametrize("ready", [[], [10.0]])
def test_nothing_to_reset_before_a_failure(ready: list[float]) -> None:
    backoff = RestartBackoff(first=1, cap=60, healthy_after=30)
    assert not backoff.reset_if_healthy(ready, now=1000)
    assert backoff.failed(1001) == 1


def measure(runs: int) -> None:
    """Print the failures of `runs` stops right after a fork, and a stop during a restart delay."""
    with tempfile.TemporaryDirectory() as directory:
        statuses = [stop_right_after_a_fork(Path(directory))[0] for _ in range(runs)]
    failed = sum(status != 0 for status in statuses)
    print(f"stop right after a fork: {failed} of {runs} runs exited non-zero {statuses}")  # noqa: T201
    with (
        tempfile.TemporaryDirectory() as directory,
        served(Path(directory), *SERVE_TWO[5:]) as server,
    ):
        with database_turned_into_a_directory(Path(directory)):
            os.kill(min(children(server.process.pid)), signal.SIGKILL)
            wait_for(lambda: "starting a new one in 8 s" in server.log(), "a delay of 8 s")
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            status = server.process.wait(WAIT)
            took = time.monotonic() - started
    print(f"SIGTERM during an 8 s restart delay: exit {status} after {took:.2f} s")  # noqa: T201


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else STOP_RUNS)
