"""500 slow-drip connections against a server with a low open-file limit (issue 14).

The attack: POSTs whose body comes a byte a second, each read well within the read timeout,
on both ports. With the open-file limit at 200, 176 of them turned every new client away and
the accept loop logged a traceback per try (55 MB of log a minute). Now: the per-process
connection cap stays below the limit, slow requests are cut to make room for new
connections and at their deadline, and the log says so a few times, not per accept.
"""

from __future__ import annotations

import asyncio
import os
import resource
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.postgres import free_port
from tests.processes import BANNER

pytestmark = pytest.mark.anyio

FD_LIMIT = 256
DRIPPERS = 500  # half on each port
NORMAL_REQUESTS = 20
POST = (
    b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


@contextmanager
def limited_server(data_dir: Path, log: IO[str], *extra: str) -> Iterator[tuple[int, int]]:
    """`apiclub serve` on both ports, its open-file limit lowered to FD_LIMIT."""
    https_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
    env["APICLUB_DATA_DIR"] = str(data_dir)

    def lower_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    command = [sys.executable, "-m", "apiclub", "serve", "--https-port", str(https_port)]
    process = subprocess.Popen(
        [*command, "--http-port", str(http_port), *extra],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=log,
        preexec_fn=lower_fd_limit,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if BANNER.search(line) is None:
            log.seek(0)
            pytest.fail(f"no banner: {line!r}; stderr: {log.read()}")
        yield https_port, http_port
        assert process.poll() is None, "the server died"
    finally:
        process.terminate()
        process.communicate(timeout=30)


async def drip(port: int, context: ssl.SSLContext | None, stop: asyncio.Event) -> None:
    """One attacker: a POST head, then its body a byte a second, until cut or told to stop."""
    hostname = "localhost" if context else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=hostname), 10
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return  # refused at once: that is one of the outcomes
    try:
        writer.write(POST)
        while not stop.is_set() and not reader.at_eof():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(1)
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


def start_drippers(
    https_port: int, http_port: int, context: ssl.SSLContext, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    """DRIPPERS attackers, half on each port."""
    return [
        asyncio.create_task(drip(http_port, None, stop))
        if index % 2
        else asyncio.create_task(drip(https_port, context, stop))
        for index in range(DRIPPERS)
    ]


async def normal_requests(context: ssl.SSLContext, https_port: int, http_port: int) -> list[int]:
    """NORMAL_REQUESTS HTTPS `GET /`, each on a new connection, then one port-80 GET."""
    statuses = []
    async with httpx.AsyncClient(verify=context, timeout=5) as client:
        for _ in range(NORMAL_REQUESTS):
            url = f"https://localhost:{https_port}/"
            response = await client.get(url, headers={"connection": "close"})
            statuses.append(response.status_code)
        url = f"http://127.0.0.1:{http_port}/"
        statuses.append((await client.get(url, headers={"host": "localhost"})).status_code)
    return statuses


SERVED = [200] * NORMAL_REQUESTS + [301]


async def test_slow_drips_past_the_fd_limit_leave_normal_clients_served() -> None:
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryFile("w+") as log:
        with limited_server(Path(data), log) as (https_port, http_port):
            context = ssl.create_default_context(cafile=Path(data) / "ca/root.pem")
            stop = asyncio.Event()
            drippers = start_drippers(https_port, http_port, context, stop)
            await asyncio.sleep(3)  # all connected (or refused), dripping
            statuses = await normal_requests(context, https_port, http_port)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*drippers), 30)
        log.seek(0)
        lines = log.read().splitlines()
    assert statuses == SERVED
    assert len(lines) < 100, "\n".join(lines[-30:])
    assert not any("Traceback" in line for line in lines), "\n".join(lines[:40])
    assert any("connections open" in line for line in lines), "\n".join(lines[:20])


async def test_running_out_of_descriptors_is_logged_once_and_the_server_recovers() -> None:
    # A cap above the open-file limit: accept() itself fails with EMFILE.
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryFile("w+") as log:
        extra = ("--max-connections", "5000")
        with limited_server(Path(data), log, *extra) as (https_port, http_port):
            context = ssl.create_default_context(cafile=Path(data) / "ca/root.pem")
            stop = asyncio.Event()
            drippers = start_drippers(https_port, http_port, context, stop)
            await asyncio.sleep(3)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*drippers), 30)
            await asyncio.sleep(1)  # the server sees the drippers gone
            statuses = await normal_requests(context, https_port, http_port)
        log.seek(0)
        lines = log.read().splitlines()
    assert statuses == SERVED
    assert len(lines) < 100, "\n".join(lines[-30:])
    assert not any("Traceback" in line for line in lines), "\n".join(lines[:40])
    assert sum("out of file descriptors" in line for line in lines) == 1, "\n".join(lines[-30:])
