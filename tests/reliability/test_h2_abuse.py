"""HTTP/2 abuse over real TLS: rapid reset (CVE-2023-44487) and a mixed h1 + h2 burst at SIGTERM.

Servers are the real CLI (`tests/processes.served`) so that RSS can be read from /proc and
SIGTERM is the real signal. Figures are printed (`pytest -s` shows them), never timed.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import httpx

from apiclub.server.config import MAX_REQUESTS_PER_CONNECTION
from tests.processes import Served, served
from tests.reliability.h2client import BATCH, H2Connection, rapid_reset

FLOOD_STREAMS = 20_000
FLOOD_SECONDS = 10.0
MIB = 1024 * 1024
RSS_GROWTH_LIMIT = 64 * MIB
"""Generous: what matters is that 20,000 reset streams do not each leave something behind."""


def rss(server: Served) -> int:
    """Resident memory of the server process in bytes (/proc/PID/status, VmRSS in kB)."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


async def probe_until(server: Served, context: ssl.SSLContext, done: asyncio.Event) -> list[int]:
    """GET / over HTTP/1.1, one after another, until `done`; the statuses."""
    statuses: list[int] = []
    async with httpx.AsyncClient(verify=context, timeout=10) as client:
        while not done.is_set() or not statuses:
            statuses.append((await client.get(f"{server.url}/")).status_code)
    return statuses


async def probe_once(server: Served) -> list[int]:
    done = asyncio.Event()
    done.set()
    return await probe_until(server, client_context(server), done)


def client_context(server: Served) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.root))


async def flood_while_probing(server: Served) -> tuple[object, list[int], list[int]]:
    done = asyncio.Event()
    probe = asyncio.create_task(probe_until(server, client_context(server), done))
    try:
        report = await rapid_reset(
            server.port, client_context(server), streams=FLOOD_STREAMS, seconds=FLOOD_SECONDS
        )
    finally:
        done.set()
    during = await probe
    after = await probe_once(server)
    return report, during, after


def test_rapid_reset_is_cut_off_and_others_are_served(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        asyncio.run(probe_once(server))  # warm up: the first request loads the app's code paths
        before = rss(server)
        report, during, after = asyncio.run(flood_while_probing(server))
        grown = rss(server) - before
        log = server.log()
        started = log.count('"GET / 2" ')
        sys.stdout.write(
            f"\nrapid reset: {report.streams_reset} streams reset on {report.connections} "
            f"connections ({report.cut_off} cut off by the server, {report.goaways} GOAWAY "
            f"read; the app ran for {started} streams); {len(during)} requests served to "
            f"another client during the flood, {len(after)} after; RSS "
            f"{before / MIB:.1f} -> {(before + grown) / MIB:.1f} MiB\n"
        )
    assert report.streams_reset >= MAX_REQUESTS_PER_CONNECTION * 2
    assert set(during) == {200}
    assert after == [200]
    # The server ended every connection but the last (GOAWAY, then close), and the app ran for
    # at most the limit's streams on each: the client sends far more before it notices.
    assert report.cut_off >= report.connections - 1
    assert started <= report.connections * (MAX_REQUESTS_PER_CONNECTION + 1)
    assert grown < RSS_GROWTH_LIMIT
    assert " 500 " not in log and "Traceback" not in log


def test_polite_h2_connection_below_the_limit_is_not_cut_off(tmp_path: Path) -> None:
    async def requests(server: Served, count: int) -> H2Connection:
        connection = await H2Connection.open(server.port, client_context(server))
        for start in range(0, count, BATCH // 2):
            ids = [connection.request() for _ in range(min(BATCH // 2, count - start))]
            await connection.flush()
            while not set(ids) <= connection.ended and not connection.closed.is_set():
                await asyncio.sleep(0.005)
        await connection.close()
        return connection

    with served(tmp_path) as server:
        polite = asyncio.run(requests(server, MAX_REQUESTS_PER_CONNECTION - 1))
    assert len(polite.responses) == MAX_REQUESTS_PER_CONNECTION - 1
    assert set(polite.responses.values()) == {200}
    assert not polite.goaway.is_set()
