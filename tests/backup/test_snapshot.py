from __future__ import annotations

import json
import stat
import tarfile
import time
from pathlib import Path

from tests.backup.helpers import WriteLoad, integrity, task_ids
from tests.processes import run_apiclub, served


def test_a_backup_under_write_load_holds_every_write_acknowledged_before_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    archive = tmp_path / "snap.tar"
    with served(data) as server:
        load = WriteLoad(server.url, server.root).start()
        try:
            load.wait_for(50)
            began = time.monotonic()
            before_backup = load.count()
            result = run_apiclub("backup", "--to", str(archive), data_dir=data)
            during = load.count() - before_backup
        finally:
            load.stop()
        assert result.returncode == 0, result.stderr
    acked = load.acked_before(began)
    assert during > 0, "no write was acknowledged while the backup ran: no load to prove"
    out = tmp_path / "restored"
    restored = run_apiclub("restore", str(archive), data_dir=out)
    assert restored.returncode == 0, restored.stderr
    ids = task_ids(out / "api.db")
    assert acked <= ids, f"{len(acked - ids)} acknowledged writes missing"
    assert integrity(out / "api.db") == "ok"
    print(f"backup under load: {len(acked)} acked before, {during} during, {len(ids)} in copy")  # noqa: T201


def test_the_archive_has_a_manifest_checksums_and_private_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_apiclub("tokens", "add", "deploy", data_dir=data).returncode == 0
    with served(data):
        result = run_apiclub("backup", "--to", str(tmp_path / "out"), data_dir=data)
    assert result.returncode == 0, result.stderr
    (archive,) = (tmp_path / "out").glob("apiclub-*.tar")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        assert members[0].name == "manifest.json"
        stream = tar.extractfile(members[0])
        assert stream is not None
        manifest = json.loads(stream.read())
        modes = {m.name: stat.S_IMODE(m.mode) for m in members}
    assert manifest["engine"] == "sqlite"
    assert manifest["migrations"], "the applied migrations are listed"
    assert set(manifest["files"]) == set(modes) - {"manifest.json"}
    keys = [name for name in modes if name.endswith(("privkey.pem", "root-key.pem"))]
    assert keys and all(modes[name] == 0o600 for name in keys)
    assert modes["database/api.db"] == 0o600
    assert "data/ca/root.pem" in modes
    assert modes["data/auth/tokens.json"] == 0o600  # the write tokens' hashes
    assert not any(name.endswith((".lock", "-wal", "-shm")) for name in modes)


def test_backup_without_a_database_fails_in_one_line(tmp_path: Path) -> None:
    result = run_apiclub("backup", "--to", str(tmp_path / "x.tar"), data_dir=tmp_path / "none")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no database at" in result.stderr
    assert not (tmp_path / "x.tar").exists()


def test_a_compressed_snapshot_restores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data):
        pass
    result = run_apiclub("backup", "--to", str(tmp_path / "s.tar.gz"), data_dir=data)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.tar.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic
    with tarfile.open(tmp_path / "s.tar.gz") as tar:
        assert tar.getnames()[0] == "manifest.json"
    restored = run_apiclub("restore", str(tmp_path / "s.tar.gz"), data_dir=tmp_path / "r")
    assert restored.returncode == 0, restored.stderr
    assert integrity(tmp_path / "r/api.db") == "ok"


def test_a_plain_tar_is_not_compressed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data):
        pass
    assert run_apiclub("backup", "--to", str(tmp_path / "s.tar"), data_dir=data).returncode == 0
    assert (tmp_path / "s.tar").read_bytes()[:2] != b"\x1f\x8b"


def test_a_large_database_shows_progress_on_stderr(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    assert run_apiclub("migrate", data_dir=data).returncode == 0
    with sqlite3.connect(data / "api.db") as db:
        db.executemany(
            "INSERT INTO task (name, created_at) VALUES (?, '2026-12-03 00:00:00+00:00')",
            ((f"{i:06d}" + "x" * 150,) for i in range(200_000)),
        )
    result = run_apiclub("backup", "--to", str(tmp_path / "big.tar"), data_dir=data)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("apiclub: copying the database: 100% (")
    assert len(lines) >= 5 and all(line.startswith("apiclub: copying") for line in lines)
    assert "200000 tasks" in result.stdout


def test_a_small_database_prints_no_progress(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_apiclub("migrate", data_dir=data).returncode == 0
    result = run_apiclub("backup", "--to", str(tmp_path / "small.tar"), data_dir=data)
    assert result.returncode == 0 and result.stderr == ""
