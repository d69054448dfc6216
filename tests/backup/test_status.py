from __future__ import annotations

import os
import signal
import ssl
import time
from pathlib import Path

import httpx

from tests.backup.helpers import require_tool
from tests.backup.test_replication import _children, _wait_for
from tests.processes import run_apiclub, served


def _write(url: str, root: Path, count: int) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(root))) as client:
        for i in range(count):
            assert client.post(f"{url}/task/", json={"name": f"s{i}"}).status_code == 201


def test_replication_status_in_step_then_behind_when_litestream_stalls(tmp_path: Path) -> None:
    require_tool("litestream")
    replica = f"file://{tmp_path / 'replica'}"
    data = tmp_path / "data"
    with served(data, "--replicate", replica) as server:
        _wait_for(lambda: "snapshot complete" in server.log())
        _write(server.url, server.root, 5)
        time.sleep(2.5)
        ok = run_apiclub("replication", "--replicate", replica, data_dir=data)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "in step" in ok.stdout and "newest change: txid" in ok.stdout
        (child,) = _children(server.process.pid)
        os.kill(child, signal.SIGSTOP)  # Litestream frozen: nothing more is shipped
        try:
            time.sleep(3.5)
            _write(server.url, server.root, 5)
            behind = run_apiclub("replication", "--replicate", replica, data_dir=data)
        finally:
            os.kill(child, signal.SIGCONT)
        assert behind.returncode == 1, behind.stdout
        assert "behind by" in behind.stdout


def test_an_empty_replica_is_reported(tmp_path: Path) -> None:
    require_tool("litestream")
    result = run_apiclub(
        "replication", "--replicate", f"file://{tmp_path / 'nothing'}", data_dir=tmp_path
    )
    assert result.returncode == 1
    assert "holds nothing yet" in result.stdout


def test_replication_status_without_a_replica_is_one_line(tmp_path: Path) -> None:
    result = run_apiclub("replication", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "set APICLUB_REPLICATE" in result.stderr
