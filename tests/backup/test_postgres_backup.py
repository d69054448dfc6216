"""`apiclub backup` on PostgreSQL: pg_dump's custom format in the archive, or a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.postgres import Postgres, postgres, postgres_url
from tests.processes import run_apiclub

__all__ = ["postgres", "postgres_url"]


def test_a_postgres_backup_holds_a_checked_dump_and_the_certificates(
    postgres: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    assert (
        run_apiclub("migrate", "--database-url", postgres_url, data_dir=tmp_path / "d").returncode
        == 0
    )
    archive = tmp_path / "pg.tar"
    result = run_apiclub(
        "backup", "--database-url", postgres_url, "--to", str(archive), data_dir=tmp_path / "d"
    )
    assert result.returncode == 0, result.stderr
    assert postgres.password not in result.stdout + result.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        stream = tar.extractfile("manifest.json")
        assert stream is not None
        manifest = json.loads(stream.read())
        dump = tar.extractfile("database/postgres.dump")
        assert dump is not None
        (tmp_path / "x.dump").write_bytes(dump.read())
    assert manifest["engine"] == "postgresql" and len(manifest["migrations"]) >= 3
    listed = subprocess.run(
        ["pg_restore", "--list", str(tmp_path / "x.dump")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "TABLE public task" in listed.stdout
    assert "database/postgres.dump" in names
    restored = run_apiclub(
        "restore", str(archive), "--database-url", postgres_url, data_dir=tmp_path / "r"
    )
    assert restored.returncode == 0, restored.stderr
    assert "pg_restore --clean --if-exists --no-owner" in restored.stdout
    assert postgres.password not in restored.stdout + restored.stderr
    assert (tmp_path / "r/restore-postgres.dump").stat().st_mode & 0o777 == 0o600
    # A SQLite-configured apiclub refuses a PostgreSQL snapshot, touching nothing.
    wrong = run_apiclub("restore", str(archive), data_dir=tmp_path / "sqlite")
    assert wrong.returncode == 1 and "holds a postgresql database" in wrong.stderr


def test_without_pg_dump_the_message_says_what_to_run(
    postgres: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    env = {k: v for k, v in env.items() if not k.startswith("APICLUB_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "apiclub",
            "backup",
            "--database-url",
            postgres_url,
            "--to",
            str(tmp_path / "pg.tar"),
        ],
        env={**env, "APICLUB_DATA_DIR": str(tmp_path / "d")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert (
        "pg_dump is not installed" in result.stderr and "pg_dump --format=custom" in result.stderr
    )
    assert postgres.password not in result.stderr
    assert not (tmp_path / "pg.tar").exists()
