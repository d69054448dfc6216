"""The whole-request deadline on both listeners: a request dripped slowly is cut, a fast one served.

Each drip below keeps every read well within the 30 s read timeout, which restarts at each
read: only the request's own deadline (from its first byte, extended by its minimum rate, up
to its maximum time) ends it. Issue 14: 176 such POSTs held every file descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time

import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

BODY = b'{"name": "' + b"x" * 80 + b'"}'
POST = (
    b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
)
GET = b"GET /task/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
BOUND = 10.0  # seconds: far past the deadlines below, far below the read timeout's 30 s


def short_deadline(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, request_timeout=1.0, request_min_rate=1024, request_max_time=1.5
    )


async def drip_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, interval: float
) -> tuple[float, bytes]:
    """Send `data` a byte at a time; seconds until the server closed, and what it sent."""
    start = time.monotonic()
    received = b""

    async def read_all() -> None:
        nonlocal received
        while chunk := await reader.read(4096):
            received += chunk

    reading = asyncio.create_task(read_all())
    for index in range(len(data)):
        if reading.done():
            break
        try:
            writer.write(data[index : index + 1])
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            break
        await asyncio.sleep(interval)
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await asyncio.wait_for(reading, BOUND)
    writer.close()
    return time.monotonic() - start, received


async def test_api_body_dripped_is_cut_at_the_request_deadline(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(short_deadline(files_settings), redirect=False) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
        )
        writer.write(POST)
        # 92 body bytes at 0.1 s each would take 9 s; the deadline is 1 s + 92/1024 s.
        seconds, received = await asyncio.wait_for(
            drip_until_closed(reader, writer, BODY, 0.1), BOUND * 2
        )
    assert seconds < 3.0, seconds
    assert b"201" not in received


async def test_api_head_dripped_is_cut_at_the_request_deadline(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(short_deadline(files_settings), redirect=False) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
        )
        head = b"GET /task/ HTTP/1.1\r\nHost: localhost\r\nX-Drip: " + b"a" * 100 + b"\r\n\r\n"
        seconds, received = await asyncio.wait_for(
            drip_until_closed(reader, writer, head, 0.1), BOUND * 2
        )
    assert seconds < 3.0, seconds
    assert received == b""


async def test_api_requests_within_the_deadline_are_served_on_one_connection(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(short_deadline(files_settings), redirect=False) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
        )
        # Three requests over 2.4 s: longer than one deadline, each in time (it restarts).
        for _ in range(3):
            writer.write(POST)
            await asyncio.sleep(0.4)
            writer.write(BODY)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            assert head.startswith(b"HTTP/1.1 201 "), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(0.4)
        writer.close()


async def test_port_80_body_dripped_is_cut_at_the_request_deadline(
    files_settings: Settings,
) -> None:
    async with serving(short_deadline(files_settings)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.redirect_port)
        writer.write(POST)
        seconds, received = await asyncio.wait_for(
            drip_until_closed(reader, writer, BODY, 0.1), BOUND * 2
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", server.redirect_port)
        writer.write(POST + BODY)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        writer.close()
    assert seconds < 3.0, seconds
    assert received == b""
    assert answer.startswith(b"HTTP/1.1 308 "), answer
