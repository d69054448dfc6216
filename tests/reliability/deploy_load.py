"""The load of issue #15 across a deploy: 4 clients, a new verified TLS connection per request.

Each client alternates GET / and POST /task/ on a fresh connection (`Connection: close`), so a
deploy that refuses, resets or drops a connection shows as a failed request. Every 201's id is
kept, so the test can check that each acknowledged write is in the database afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

CLIENTS = 4
REQUEST_TIMEOUT = 20.0
BANNER = re.compile(r"apiclub serving https://localhost:(\d+)/")


@dataclass
class LoadResult:
    """What the clients saw."""

    successes: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    began: float | None = None
    """When the clients started (run_load sets it): a gap may open the load..."""
    ended: float | None = None
    """...or close it: a deploy after which nothing answers again is one long gap."""

    @property
    def longest_gap(self) -> float:
        """Seconds: the longest time without a successful answer (any client).

        Between two answers, and from the load's start to the first one and from the last one
        to the load's end: otherwise a deploy that leaves nothing answering shows no gap.
        """
        edges = [edge for edge in (self.began, self.ended) if edge is not None]
        times = sorted([*self.successes, *edges])
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def summary(self, label: str) -> str:
        return (
            f"{label}: {len(self.successes)} answered, {len(self.failures)} failed, "
            f"{len(self.created)} writes acknowledged, longest gap {self.longest_gap:.3f} s"
        )


async def _request(
    port: int, context: ssl.SSLContext, method: str, path: str, body: bytes = b"", host: str = ""
) -> tuple[int, bytes]:
    host = host or "localhost"
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=host
    )
    try:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    if not status_line.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no answer: {answer[:80]!r}")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def _client(
    number: int,
    port: Callable[[], int],
    context: ssl.SSLContext,
    stop: asyncio.Event,
    out: LoadResult,
    host: str,
) -> None:
    sequence = 0
    while not stop.is_set():
        sequence += 1
        post = sequence % 2 == 0
        try:
            if post:
                name = json.dumps({"name": f"client {number} write {sequence}"}).encode()
                status, body = await asyncio.wait_for(
                    _request(port(), context, "POST", "/task/", name, host), REQUEST_TIMEOUT
                )
            else:
                status, body = await asyncio.wait_for(
                    _request(port(), context, "GET", "/", host=host), REQUEST_TIMEOUT
                )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            out.failures.append(f"{'POST' if post else 'GET'}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.01)
            continue
        if status == (201 if post else 200):
            out.successes.append(time.monotonic())
            if post:
                out.created.append(int(json.loads(body)["id"]))
        else:
            out.failures.append(f"{'POST' if post else 'GET'}: status {status}: {body[:200]!r}")


def run_load(
    port: Callable[[], int], root: Path, during: Callable[[], None], host: str = "localhost"
) -> LoadResult:
    """Run the clients while `during()` runs in a thread, and a moment after it returns."""
    out = LoadResult()
    context = ssl.create_default_context(cafile=str(root))

    async def main() -> None:
        stop = asyncio.Event()
        out.began = time.monotonic()
        clients = [
            asyncio.create_task(_client(n, port, context, stop, out, host)) for n in range(CLIENTS)
        ]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(during)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*clients)
        out.ended = time.monotonic()

    asyncio.run(main())
    return out


def stored_ids(database: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return {row[0] for row in db.execute("SELECT id FROM task")}


def assert_no_loss(result: LoadResult, database: Path, label: str) -> None:
    """Zero failed requests, every acknowledged write in the SQLite file; prints the figures."""
    assert_no_loss_in(result, lambda: stored_ids(database), label)


def assert_no_loss_in(result: LoadResult, stored: Callable[[], set[int]], label: str) -> None:
    """Zero failed requests, every acknowledged write among the ids `stored()` returns.

    `stored` reads whichever database the server used (SQLite, PostgreSQL in a container).
    """
    sys.stdout.write(result.summary(label) + "\n")
    assert result.failures == [], result.failures[:10]
    assert len(result.successes) > 50, result.summary(label)
    assert_writes_kept(result, stored())


def assert_writes_kept(result: LoadResult, stored: set[int]) -> None:
    """Every acknowledged write is stored: a deploy may refuse requests, never lose a 201."""
    missing = set(result.created) - stored
    assert missing == set(), f"acknowledged but not stored: {sorted(missing)[:20]}"


@dataclass
class Running:
    """An `apiclub serve` (the parent process), its port, its log."""

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    stderr: IO[str]

    @property
    def root(self) -> Path:
        return self.data_dir / "ca/root.pem"

    final_log: str | None = None

    def log(self) -> str:
        """Its stderr so far (all of it, once stopped)."""
        if self.final_log is not None:
            return self.final_log
        self.stderr.seek(0)
        return self.stderr.read()

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {count}x {text!r} in the log:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def reload(self, generation: int) -> None:
        """SIGHUP, then wait until that generation serves."""
        self.process.send_signal(signal.SIGHUP)
        self.wait_for_log(f"generation {generation} serving (pids")


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
    env.pop("NOTIFY_SOCKET", None)
    env["APICLUB_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@contextmanager
def serving(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    """`apiclub serve` on a free HTTPS port, redirect off, local CA; stopped at the end."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apiclub",
                "serve",
                "--https-port",
                "0",
                "--http-port",
                "0",
                *args,
            ],
            env=env if env is not None else clean_env(data_dir),
            text=True,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        match = BANNER.search(line)
        running = Running(process, int(match.group(1)) if match else 0, data_dir, stderr)
        if match is None:
            process.kill()
            process.communicate()
            pytest.fail(f"no banner: {line!r}; stderr: {running.log()[-4000:]}")
        try:
            yield running
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
            process.communicate()
            running.final_log = running.log()
