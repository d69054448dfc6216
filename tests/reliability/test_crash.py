"""Nothing acknowledged is lost: kill -9 and SIGTERM in the middle of a write load."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import ssl
from pathlib import Path

import httpx

from tests.processes import Served, served

WORKERS = 16
KILL_AFTER = 150
"""Acknowledged writes before the signal; the load goes on until the process is gone."""
LOAD_LIMIT = 30.0
"""Seconds the load may run at most (bounded even if the signal never lands)."""


async def write_until_signalled(
    server: Served, signum: int
) -> tuple[dict[int, str], int, list[int]]:
    """POST from WORKERS clients; send `signum` after KILL_AFTER 201s.

    Returns the acknowledged tasks (id -> name), the count of requests that failed at the
    transport level, and every HTTP status that was neither 201 nor a transport failure.
    """
    context = ssl.create_default_context(cafile=str(server.root))
    acknowledged: dict[int, str] = {}
    failures = 0
    odd_statuses: list[int] = []
    signalled = asyncio.Event()

    async def worker(number: int, client: httpx.AsyncClient) -> None:
        nonlocal failures
        sequence = 0
        while not signalled.is_set() or failures < WORKERS * 4:
            sequence += 1
            name = f"worker {number} task {sequence}"
            try:
                response = await client.post(f"{server.url}/task/", json={"name": name})
            except httpx.TransportError:
                failures += 1
                if signalled.is_set():
                    return
                continue
            if response.status_code == 201:
                acknowledged[response.json()["id"]] = name
                if len(acknowledged) >= KILL_AFTER and not signalled.is_set():
                    signalled.set()
                    server.process.send_signal(signum)
            else:
                odd_statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=WORKERS)
    async with httpx.AsyncClient(verify=context, limits=limits, timeout=10) as client:
        await asyncio.wait_for(
            asyncio.gather(*(worker(n, client) for n in range(WORKERS))), LOAD_LIMIT
        )
    return acknowledged, failures, odd_statuses


def stored(data_dir: Path) -> dict[int, str]:
    with sqlite3.connect(data_dir / "api.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return dict(db.execute("SELECT id, name FROM task").fetchall())


def test_kill_9_during_writes_loses_no_acknowledged_task(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        acknowledged, _, odd = asyncio.run(write_until_signalled(server, signal.SIGKILL))
        server.process.wait(timeout=30)
        assert server.process.returncode == -signal.SIGKILL
    assert odd == []
    assert len(acknowledged) >= KILL_AFTER
    # A restart on the same data directory serves every acknowledged task.
    with served(tmp_path) as again:
        context = ssl.create_default_context(cafile=str(again.root))
        with httpx.Client(verify=context) as client:
            total = client.get(f"{again.url}/task/", params={"page_size": 1}).json()["total"]
    kept = stored(tmp_path)
    assert {task_id: kept.get(task_id) for task_id in acknowledged} == acknowledged
    assert total == len(kept) >= len(acknowledged)


def test_sigterm_during_writes_completes_or_refuses_every_request(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        acknowledged, failures, odd = asyncio.run(write_until_signalled(server, signal.SIGTERM))
        server.process.wait(timeout=30)
        assert server.process.returncode == 0
    # In-flight requests were answered 201 (or refused before they were accepted): none got
    # a 5xx, and every 201 is stored.
    assert odd == []
    assert failures >= 1  # the load really ran into the stopped server
    kept = stored(tmp_path)
    assert {task_id: kept.get(task_id) for task_id in acknowledged} == acknowledged
