"""Storage faults under a running `apiclub serve`: nothing wrong served, nothing lost.

A full data directory (a small tmpfs filled up), a read-only one (a read-only bind mount laid
over it), and the database file deleted or replaced: writes answer 503 naming the cause,
reads answer the data that was there or 503 (never another file's answer), and every write
acknowledged before is still stored afterwards.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.processes import Served, served

TMPFS_SIZE = "8m"
CHUNK = 64 * 1024

CAP_SYS_ADMIN = 21  # linux/capability.h


def can_mount() -> bool:
    """Root with CAP_SYS_ADMIN: root inside an unprivileged container is not enough."""
    status = Path("/proc/self/status").read_text()
    effective = int(
        next(line for line in status.splitlines() if line.startswith("CapEff:"))[7:], 16
    )
    return os.geteuid() == 0 and bool(effective >> CAP_SYS_ADMIN & 1)


needs_root = pytest.mark.skipif(
    not can_mount(), reason="mounting a tmpfs or a bind mount needs root with CAP_SYS_ADMIN"
)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh tmpfs of TMPFS_SIZE; every mount stacked on it is undone afterwards."""
    point = tmp_path / "fs"
    point.mkdir()
    mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "apiclub-test", str(point))
    try:
        yield point
    finally:
        while subprocess.run(["mountpoint", "-q", str(point)], check=False).returncode == 0:
            subprocess.run(["umount", "--lazy", str(point)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system refuses another byte; return it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (CHUNK, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@contextmanager
def client_for(server: Served) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(server.root))
    with httpx.Client(base_url=server.url, verify=context, timeout=30) as client:
        yield client


def create_tasks(client: httpx.Client, count: int) -> dict[int, str]:
    created = {}
    for number in range(count):
        response = client.post("/task/", json={"name": f"task {number}"})
        assert response.status_code == 201, response.text
        created[response.json()["id"]] = response.json()["name"]
    return created


def listed(client: httpx.Client) -> dict[int, str]:
    response = client.get("/task/", params={"page_size": 100})
    assert response.status_code == 200, response.text
    return {task["id"]: task["name"] for task in response.json()["tasks"]}


def assert_writes_refused(client: httpx.Client, task_id: int, cause: str) -> None:
    for response in (
        client.post("/task/", json={"name": "refused"}),
        client.put(f"/task/{task_id}", json={"name": "refused"}),
        client.delete(f"/task/{task_id}"),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"] == f"Service Unavailable: {cause}, retry later"


def stored(database: Path) -> dict[int, str]:
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return dict(db.execute("SELECT id, name FROM task").fetchall())


@needs_root
def test_full_data_directory_refuses_writes_serves_reads_and_recovers(small_fs: Path) -> None:
    data = small_fs / "data"
    with served(data) as server, client_for(server) as client:
        acknowledged = create_tasks(client, 5)
        filler = fill(small_fs)
        assert_writes_refused(client, min(acknowledged), "the database disk is full")
        assert listed(client) == acknowledged
        assert client.get(f"/task/{min(acknowledged)}").json()["name"] == "task 0"
        assert client.get("/db-check").status_code == 200

        filler.unlink()  # space is back: writes work again, without a restart
        acknowledged |= create_tasks(client, 1)
        assert listed(client) == acknowledged
        assert "database unavailable" in server.log()
    assert stored(data / "api.db") == acknowledged


@needs_root
def test_read_only_data_directory_refuses_writes_serves_reads_and_recovers(
    small_fs: Path,
) -> None:
    data = small_fs / "data"
    with served(data) as server, client_for(server) as client:
        acknowledged = create_tasks(client, 5)
        # Root ignores file modes; a read-only bind mount over the directory does not.
        mount("--bind", str(small_fs), str(small_fs))
        mount("-o", "remount,bind,ro", str(small_fs))
        assert_writes_refused(client, min(acknowledged), "the database is read-only")
        assert listed(client) == acknowledged

        mount("-o", "remount,bind,rw", str(small_fs))
        acknowledged |= create_tasks(client, 1)
        assert listed(client) == acknowledged
    assert stored(data / "api.db") == acknowledged


GONE = (
    "Service Unavailable: the database file is missing or was replaced while the server ran; "
    "an operator must restore it and restart the server"
)


def assert_database_refused(client: httpx.Client, task_id: int) -> None:
    for response in (
        client.get(f"/task/{task_id}"),
        client.get("/task/"),
        client.get("/db-check"),
        client.post("/task/", json={"name": "would get a reused id"}),
        client.delete(f"/task/{task_id}"),
    ):
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == GONE
        assert response.headers["retry-after"] == "5"


def test_deleted_database_answers_503_and_its_content_is_saved(tmp_path: Path) -> None:
    database = tmp_path / "api.db"
    with served(tmp_path) as server, client_for(server) as client:
        acknowledged = create_tasks(client, 5)
        database.unlink()
        assert_database_refused(client, min(acknowledged))
        assert_database_refused(client, max(acknowledged))
        assert not database.exists(), "a new empty database was created in its place"
        log = server.log()
    assert log.count(f"database file {database} was deleted while serving") == 1
    (saved,) = tmp_path.glob("api.db.recovered-*")
    assert f"saved in {saved}" in log
    assert stored(saved) == acknowledged


def test_replaced_database_answers_503_not_the_other_files_answers(tmp_path: Path) -> None:
    database = tmp_path / "api.db"
    with served(tmp_path) as server, client_for(server) as client:
        acknowledged = create_tasks(client, 3)
        # An older copy restored over it while serving (a new inode at the same path).
        older = tmp_path / "older.db"
        with closing(sqlite3.connect(database)) as db, closing(sqlite3.connect(older)) as copy:
            db.backup(copy)
            copy.execute("DELETE FROM task")
            copy.commit()
        older.replace(database)
        assert_database_refused(client, min(acknowledged))
        assert "was replaced while serving" in server.log()
    (saved,) = tmp_path.glob("api.db.recovered-*")
    assert stored(saved) == acknowledged


def test_database_moved_away_and_back_is_served_again(tmp_path: Path) -> None:
    database, aside = tmp_path / "api.db", tmp_path / "aside.db"
    with served(tmp_path) as server, client_for(server) as client:
        acknowledged = create_tasks(client, 3)
        database.rename(aside)
        assert_database_refused(client, min(acknowledged))
        aside.rename(database)  # the same file (inode) again: nothing wrong to serve
        assert listed(client) == acknowledged
        acknowledged |= create_tasks(client, 1)
        assert f"database file {database} is back" in server.log()
    assert stored(database) == acknowledged
