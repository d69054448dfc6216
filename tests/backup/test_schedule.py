from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx

from tests.backup.helpers import WriteLoad
from tests.processes import run_apiclub, served


def _wait(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_server_takes_snapshots_on_schedule_and_keeps_the_newest(tmp_path: Path) -> None:
    data, backups = tmp_path / "data", tmp_path / "snaps"
    flags = ("--backup-every", "1s", "--backup-keep", "2", "--backup-dir", str(backups))
    with served(data, *flags) as server:
        load = WriteLoad(server.url, server.root, writers=2).start()
        try:
            _wait(lambda: server.log().count("apiclub.backup: snapshot ") >= 4)
        finally:
            load.stop()
        snapshots = sorted(backups.glob("apiclub-*.tar"))
        assert len(snapshots) == 2, snapshots
        assert "removed 1 old" in server.log()
        context = ssl.create_default_context(cafile=str(server.root))
        assert httpx.get(f"{server.url}/", verify=context).status_code == 200
    result = run_apiclub("restore", str(snapshots[-1]), data_dir=tmp_path / "again")
    assert result.returncode == 0, result.stderr


def test_a_failing_schedule_is_logged_retried_and_never_stops_the_server(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    flags = ("--backup-every", "1s", "--backup-dir", str(blocker / "snaps"))
    with served(tmp_path / "data", *flags) as server:
        _wait(lambda: server.log().count("scheduled snapshot failed") >= 2)
        context = ssl.create_default_context(cafile=str(server.root))
        with httpx.Client(verify=context) as client:
            assert client.post(f"{server.url}/task/", json={"name": "still"}).status_code == 201
            assert client.get(f"{server.url}/").status_code == 200
        assert server.process.poll() is None


def test_no_snapshot_is_taken_by_default(tmp_path: Path) -> None:
    with served(tmp_path / "data") as server:
        time.sleep(2.5)
        assert "apiclub.backup" not in server.log()
    assert not (tmp_path / "backups").exists()


def test_with_several_workers_the_parent_alone_takes_the_snapshots(tmp_path: Path) -> None:
    import re

    from tests.backup.helpers import require_tool
    from tests.backup.test_replication import _all_children

    require_tool("litestream")
    flags = (
        "--workers",
        "2",
        "--backup-every",
        "1s",
        "--backup-dir",
        str(tmp_path / "snaps"),
        "--replicate",
        f"file://{tmp_path / 'replica'}",
    )
    with served(tmp_path / "data", *flags) as server:
        _wait(lambda: server.log().count("apiclub.backup: snapshot ") >= 2)
        pids = set(re.findall(r"\[(\d+)\] apiclub\.backup: snapshot ", server.log()))
        assert pids == {str(server.process.pid)}
        commands = [
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            for pid in _all_children(server.process.pid)
        ]
        assert sum(command.endswith(b"litestream") for command in commands) == 1
        assert len(commands) == 3  # two workers and one Litestream
