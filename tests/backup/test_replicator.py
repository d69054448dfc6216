from __future__ import annotations

import os
import signal
import ssl
import time
from pathlib import Path

import httpx

from tests.backup.helpers import require_tool, task_ids
from tests.backup.test_replication import _children, _wait_for
from tests.processes import run_apiclub, served


def test_a_dead_litestream_is_restarted_and_replication_goes_on(tmp_path: Path) -> None:
    require_tool("litestream")
    replica = f"file://{tmp_path / 'replica'}"
    with served(tmp_path / "data", "--replicate", replica) as server:
        _wait_for(lambda: "snapshot complete" in server.log())
        (first,) = _children(server.process.pid)
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: "Litestream exited with status -9" in server.log())
        _wait_for(
            lambda: (
                len(_children(server.process.pid)) == 1 and _children(server.process.pid) != [first]
            )
        )
        context = ssl.create_default_context(cafile=str(server.root))
        with httpx.Client(verify=context) as client:
            made = client.post(f"{server.url}/task/", json={"name": "after the restart"}).json()
        time.sleep(2.5)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(40) == 0
    result = run_apiclub("restore", "--from", replica, data_dir=tmp_path / "restored")
    assert result.returncode == 0, result.stderr
    assert made["id"] in task_ids(tmp_path / "restored/api.db")


def test_litestream_restarts_back_off(tmp_path: Path) -> None:
    require_tool("litestream")
    with served(tmp_path / "data", "--replicate", f"file://{tmp_path / 'r'}") as server:
        for _ in range(2):
            _wait_for(lambda: len(_children(server.process.pid)) == 1)
            os.kill(_children(server.process.pid)[0], signal.SIGKILL)
            _wait_for(lambda: not _children(server.process.pid))
        _wait_for(lambda: "restarting it in 2 s" in server.log())
        assert "restarting it in 1 s" in server.log()  # then 2 s: the delay doubles
        assert server.process.poll() is None


def test_litestream_errors_reach_our_log_and_never_stop_the_server(tmp_path: Path) -> None:
    require_tool("litestream")
    # An S3 endpoint where nothing listens: Litestream runs and fails every sync.
    with served(
        tmp_path / "data", "--replicate", "s3://bucket/db?endpoint=http://127.0.0.1:9"
    ) as server:
        _wait_for(lambda: "ERROR apiclub.litestream: " in server.log())
        assert "sync error" in server.log() or "compaction failed" in server.log()
        context = ssl.create_default_context(cafile=str(server.root))
        with httpx.Client(verify=context) as client:
            assert client.post(f"{server.url}/task/", json={"name": "served"}).status_code == 201
        assert server.process.poll() is None


def test_a_terminal_interrupt_does_not_reach_litestream_first(tmp_path: Path) -> None:
    require_tool("litestream")
    with served(tmp_path / "data", "--replicate", f"file://{tmp_path / 'r'}") as server:
        _wait_for(lambda: "snapshot complete" in server.log())
        (child,) = _children(server.process.pid)
        assert os.getpgid(child) != os.getpgid(server.process.pid)
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(40) == 0
        assert "Litestream exited" not in server.log()
