"""Slow and hostile clients do not stop others from being served (loopback, bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx
import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

IDLE_CONNECTIONS = 300
"""TCP connections that never start a TLS handshake."""
SLOW_CLIENTS = 100
"""TLS connections sending their request head a byte at a time (slowloris)."""
PROBES = 20


async def hold_idle(port: int, opened: list[asyncio.StreamWriter]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.append(writer)


async def drip_headers(
    port: int, context: ssl.SSLContext, opened: list[asyncio.StreamWriter], stop: asyncio.Event
) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    opened.append(writer)
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
    for byte in head:
        if stop.is_set():
            return
        writer.write(bytes([byte]))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        await asyncio.sleep(0.05)


async def test_slowloris_and_idle_handshakes_do_not_starve_other_clients(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    opened: list[asyncio.StreamWriter] = []
    stop = asyncio.Event()
    async with serving(files_settings, redirect=False) as server:
        port = server.api_port
        await asyncio.gather(*(hold_idle(port, opened) for _ in range(IDLE_CONNECTIONS)))
        drippers = [
            asyncio.create_task(drip_headers(port, trust_context, opened, stop))
            for _ in range(SLOW_CLIENTS)
        ]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(verify=trust_context, timeout=5) as client:
            statuses = [
                (await client.get(f"https://localhost:{port}/")).status_code for _ in range(PROBES)
            ]
        held = len(opened)
        stop.set()
        await asyncio.gather(*drippers, return_exceptions=True)
        for writer in opened:
            writer.close()
    assert statuses == [200] * PROBES
    assert (
        held == IDLE_CONNECTIONS + SLOW_CLIENTS
    )  # the flood was in place while others were served


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\xff" * 4096,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    ids=["binary", "oversized-header", "bad-chunk", "duplicate-host", "nul-in-target"],
)
async def test_protocol_garbage_on_both_ports_gets_4xx_or_close_and_no_5xx(
    files_settings: Settings, trust_context: ssl.SSLContext, payload: bytes
) -> None:
    async with serving(files_settings) as server:
        answers = []
        for port, tls in ((server.api_port, trust_context), (server.redirect_port, None)):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
            )
            writer.write(payload)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                answers.append(await asyncio.wait_for(reader.read(4096), timeout=10))
            except (ConnectionError, ssl.SSLError):
                answers.append(b"")
            writer.close()
        async with httpx.AsyncClient(verify=trust_context) as client:
            after = await client.get(f"https://localhost:{server.api_port}/")
    for answer in answers:
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
        assert status == b"" or status.startswith(b"4"), answer[:200]
        assert b"Location: https://evil" not in answer
    assert after.status_code == 200
