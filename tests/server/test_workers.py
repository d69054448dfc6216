"""`apiclub serve --workers N` as an operator runs it: shared ports, stop, a dying worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import ssl
import time
from pathlib import Path

import httpx

from tests.processes import Served, run_apiclub, served

CONNECTIONS = 16
WAIT = 30.0


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def socket_inode(local_port: int, peer_port: int) -> str:
    """The inode of the server's end of the TCP connection from `peer_port` to `local_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.rsplit(":", 1)[1], 16) == local_port and (
                int(remote.rsplit(":", 1)[1], 16) == peer_port
            ):
                return fields[9]
    raise AssertionError(f"no connection from port {peer_port} to {local_port}")


def owner(inode: str, pids: set[int]) -> int:
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if str(fd.readlink()) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"socket {inode} belongs to none of {pids}")


async def serving_pids(server: Served, pids: set[int]) -> set[int]:
    """Hold CONNECTIONS answered connections open at once; which processes hold them."""
    context = ssl.create_default_context(cafile=str(server.root))
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    opened = []
    try:
        for _ in range(CONNECTIONS):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
            )
            opened.append(writer)
            writer.write(request)
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        ports = [writer.get_extra_info("sockname")[1] for writer in opened]
        return {owner(socket_inode(server.port, port), pids) for port in ports}
    finally:
        for writer in opened:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in opened), return_exceptions=True)


def pids_seen_serving(server: Served, workers: set[int]) -> set[int]:
    """Which of `workers` answer, trying up to 20 times until every one was seen."""
    seen: set[int] = set()
    for _ in range(20):
        seen |= asyncio.run(serving_pids(server, workers))
        if seen == workers:
            break
    return seen


def test_two_workers_share_the_port_and_both_serve(tmp_path: Path) -> None:
    with served(tmp_path, "--workers", "2") as server:
        workers = children(server.process.pid)
        assert len(workers) == 2, server.log()
        assert pids_seen_serving(server, workers) == workers
        assert server.log().count("apiclub.workers: 2 workers serving") == 1


def test_one_worker_is_one_child_and_the_parent_serves_nothing(tmp_path: Path) -> None:
    # The parent holds the sockets and replaces the worker at a reload (generations.py).
    with served(tmp_path) as server:
        workers = children(server.process.pid)
        assert len(workers) == 1, server.log()
        everyone = workers | {server.process.pid}
        assert asyncio.run(serving_pids(server, everyone)) == workers


async def load_until_refused(server: Served, answered: asyncio.Event) -> list[int]:
    """POST from 8 clients, a new connection each time, until the server refuses."""
    statuses: list[int] = []
    context = ssl.create_default_context(cafile=str(server.root))

    async def client() -> None:
        async with httpx.AsyncClient(verify=context, timeout=WAIT) as http:
            while True:
                try:
                    answer = await http.post(
                        f"{server.url}/task/", json={"name": "x"}, headers={"connection": "close"}
                    )
                except httpx.TransportError:
                    return
                statuses.append(answer.status_code)
                if len(statuses) >= 40:
                    answered.set()

    await asyncio.gather(*(client() for _ in range(8)))
    return statuses


async def stop_under_load(server: Served) -> list[int]:
    answered = asyncio.Event()
    load = asyncio.create_task(load_until_refused(server, answered))
    await asyncio.wait_for(answered.wait(), WAIT)
    server.process.send_signal(signal.SIGTERM)
    return await load


def test_sigterm_under_load_answers_every_request_and_exits_0(tmp_path: Path) -> None:
    with served(tmp_path, "--workers", "2") as server:
        statuses = asyncio.run(stop_under_load(server))
        assert server.process.wait(WAIT) == 0, server.log()
    assert len(statuses) >= 40
    assert set(statuses) == {201}
    with sqlite3.connect(tmp_path / "api.db") as db:
        (stored,) = db.execute("SELECT count(*) FROM task").fetchone()
    assert stored >= len(statuses)


def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_is_replaced_and_the_rest_stop_cleanly(tmp_path: Path) -> None:
    with served(tmp_path, "--workers", "2") as server:
        before = children(server.process.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(server.process.pid) - before) == 1, "a new worker")
        wait_for(lambda: server.log().count("apiclub.workers: worker") >= 3, "it to serve")
        after = children(server.process.pid)
        assert victim not in after
        context = ssl.create_default_context(cafile=str(server.root))
        answers = [httpx.get(f"{server.url}/", verify=context) for _ in range(5)]
        assert [answer.status_code for answer in answers] == [200] * 5
        assert f"worker {victim} was killed by SIGKILL; starting a new one" in server.log()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(WAIT) == 0, server.log()


def test_a_worker_that_cannot_start_stops_the_service_with_exit_1(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "api.db") as db:
        db.execute("CREATE TABLE task (conflicting TEXT)")
    result = run_apiclub(
        "serve", "--https-port", "0", "--http-port", "0", "--workers", "2", data_dir=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("apiclub: error: ") == 1
    assert "apiclub: error: migration " in result.stderr
    # The worker's reason is the one line (the parent adds none: cli.py prints it).
    assert result.stderr.strip().splitlines()[-1].startswith("apiclub: error: migration ")
    assert " ERROR " not in result.stderr
    assert "starting a new one" not in result.stderr
