from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backup.helpers import integrity, listing, peer_serial, task_ids
from tests.backup.test_replication import _all_children
from tests.processes import run_apiclub, served


def _post(url: str, root: Path, names: list[str]) -> list[dict[str, object]]:
    context = ssl.create_default_context(cafile=str(root))
    with httpx.Client(verify=context) as client:
        return [client.post(f"{url}/task/", json={"name": n}).json() for n in names]


def _all_tasks(url: str, root: Path) -> list[dict[str, object]]:
    context = ssl.create_default_context(cafile=str(root))
    with httpx.Client(verify=context) as client:
        return client.get(f"{url}/task/", params={"page_size": 100}).json()["tasks"]


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, int, list[dict[str, object]]]:
    """A snapshot of a served data directory: its path, the served serial, the tasks."""
    data = tmp_path / "origin"
    with served(data) as server:
        _post(server.url, server.root, ["alpha", "beta", "gamma"])
        serial = peer_serial(server.port, server.root)
        tasks = _all_tasks(server.url, server.root)
        result = run_apiclub("backup", "--to", str(tmp_path / "snap.tar"), data_dir=data)
    assert result.returncode == 0, result.stderr
    return tmp_path / "snap.tar", serial, tasks


def test_a_restored_data_dir_serves_the_same_certificates_and_tasks(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, serial, tasks = snapshot
    data = tmp_path / "machine2"
    result = run_apiclub("restore", str(archive), data_dir=data)
    assert result.returncode == 0, result.stderr
    assert "previous data" not in result.stdout  # a new directory: nothing was moved aside
    assert not list(tmp_path.glob("machine2.*"))
    with served(data) as server:
        # The origin's root (`origin/ca/root.pem`) is trusted: the same CA, the same leaf.
        assert peer_serial(server.port, tmp_path / "origin/ca/root.pem") == serial
        assert _all_tasks(server.url, server.root) == tasks
        new = _post(server.url, server.root, ["delta"])[0]
        assert new["id"] == max(int(t["id"]) for t in tasks) + 1  # type: ignore[call-overload]


def test_a_fresh_data_dir_is_a_different_ca_and_empty(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    _, serial, _ = snapshot
    with served(tmp_path / "fresh") as server:
        assert peer_serial(server.port, server.root) != serial
        with pytest.raises(ssl.SSLCertVerificationError):
            peer_serial(server.port, tmp_path / "origin/ca/root.pem")
        assert _all_tasks(server.url, server.root) == []


def test_restore_moves_the_current_data_aside(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, _, tasks = snapshot
    data = tmp_path / "current"
    with served(data) as server:
        _post(server.url, server.root, ["kept aside"])
    before = listing(data)
    result = run_apiclub("restore", str(archive), data_dir=data)
    assert result.returncode == 0, result.stderr
    (aside,) = tmp_path.glob("current.before-restore-*")
    assert "previous data is kept in" in result.stdout and str(aside) in result.stdout
    assert {k: v for k, v in listing(aside).items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }
    assert len(task_ids(data / "api.db")) == len(tasks)
    assert integrity(data / "api.db") == "ok"
    assert (data.stat().st_mode & 0o777) == 0o700
    assert (data / "ca/root-key.pem").stat().st_mode & 0o777 == 0o600


def test_restore_refuses_while_a_server_runs(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, _, _ = snapshot
    data = tmp_path / "busy"
    with served(data) as server:
        _post(server.url, server.root, ["in use"])
        before = listing(data)
        result = run_apiclub("restore", str(archive), data_dir=data)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert "an apiclub server is running on this data directory" in result.stderr
        assert listing(data) == before
        assert _all_tasks(server.url, server.root)[0]["name"] == "in use"
    assert not list(tmp_path.glob("busy.*")) and not list(tmp_path.glob(".busy.*"))


def _refused(tmp_path: Path, archive: Path, expected: str) -> None:
    data = tmp_path / "target"
    with served(data) as server:
        _post(server.url, server.root, ["precious"])
    before = listing(data)
    result = run_apiclub("restore", str(archive), data_dir=data)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert listing(data) == before
    assert not list(tmp_path.glob("target.*")) and not list(tmp_path.glob(".target.*"))


def test_restore_refuses_a_truncated_snapshot(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, _, _ = snapshot
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    _refused(tmp_path, cut, "truncated")


def test_restore_refuses_a_corrupt_snapshot(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, _, _ = snapshot
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"SQLite format 3") + 6000  # inside the database copy
    raw[at] ^= 0xFF
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw))
    _refused(tmp_path, bad, "does not match its checksum")


def test_restore_refuses_a_file_that_is_no_snapshot(tmp_path: Path) -> None:
    other = tmp_path / "other.tar"
    other.write_bytes(b"not a tar at all" * 100)
    _refused(tmp_path, other, "not an apiclub snapshot")


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A data directory that is a mount point, as a container's volume is (a real tmpfs)."""
    import subprocess

    from tests.reliability.test_storage_faults import can_mount

    if not can_mount():
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN (not in a container)")
    path = tmp_path / "volume"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (this test needs root): {mounted.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def test_restore_into_a_volume_mount_point_swaps_its_contents(
    volume: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, serial, tasks = snapshot
    with served(volume) as server:
        _post(server.url, server.root, ["on the volume"])
    result = run_apiclub("restore", str(archive), data_dir=volume)
    assert result.returncode == 0, result.stderr
    (aside,) = volume.glob(".before-restore-*")
    assert task_ids(aside / "api.db") and (aside / "ca/root.pem").is_file()
    assert not list(volume.glob(".*restoring*"))
    with served(volume) as server:
        assert _all_tasks(server.url, server.root) == tasks
        assert peer_serial(server.port, server.root) == serial
    again = run_apiclub("backup", "--to", str(volume.parent / "again.tar"), data_dir=volume)
    assert again.returncode == 0, again.stderr
    import tarfile

    with tarfile.open(volume.parent / "again.tar") as tar:
        names = tar.getnames()
    assert "data/ca/root.pem" in names
    assert not [name for name in names if ".before-restore-" in name]


def test_a_plain_directory_is_renamed_not_swapped(
    tmp_path: Path, snapshot: tuple[Path, int, list[dict[str, object]]]
) -> None:
    archive, _, _ = snapshot
    data = tmp_path / "plain"
    with served(data):
        pass
    assert run_apiclub("restore", str(archive), data_dir=data).returncode == 0
    assert not list(data.glob(".before-restore-*"))
    assert list(tmp_path.glob("plain.before-restore-*"))


def test_restore_refuses_a_truncated_compressed_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "origin"
    with served(data):
        pass
    assert run_apiclub("backup", "--to", str(tmp_path / "s.tgz"), data_dir=data).returncode == 0
    cut = tmp_path / "cut.tgz"
    cut.write_bytes((tmp_path / "s.tgz").read_bytes()[:-200])
    _refused(tmp_path, cut, "truncated")


def _flock_holders(path: Path) -> set[int]:
    """The pids /proc/locks names for a shared flock on `path`."""
    device_inode = f":{path.stat().st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and "READ" in fields:
            pid, where = fields[4], fields[5]
            if where.endswith(device_inode):
                holders.add(int(pid))
    return holders


def test_with_workers_the_parent_holds_the_serving_lock_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data, "--workers", "2") as server:
        assert server.process.pid in _flock_holders(data / "api.db.serve.lock")


def test_a_single_worker_server_holds_it_while_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data) as server:
        # The parent and its one worker (which opened the database).
        workers = set(_all_children(server.process.pid))
        assert len(workers) == 1
        assert _flock_holders(data / "api.db.serve.lock") == {server.process.pid} | workers
    assert _flock_holders(data / "api.db.serve.lock") == set()
