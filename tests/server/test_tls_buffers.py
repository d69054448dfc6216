"""TLS connections cost one record of read buffer, and large bodies still arrive whole."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from apiclub.compat.tls_buffers import TLS_READ_SIZE
from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

CONNECTIONS = 200
MIB = 1024 * 1024
# Default asyncio: 256 KiB per TLS connection on each side (CPython gh-109534), ~100 MiB here.
BUDGET = CONNECTIONS * 128 * 1024


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_open_tls_connections_cost_far_less_than_256_kib_each(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(replace(files_settings, http_port=0), redirect=False) as server:
        before = rss()
        opened = []
        for _ in range(CONNECTIONS):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
            )
            opened.append(writer)
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        grown = rss() - before
        for writer in opened:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in opened), return_exceptions=True)
    assert grown < BUDGET, f"{grown / MIB:.0f} MiB for {CONNECTIONS} TLS connections"


async def test_a_body_of_many_records_arrives_whole(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    # JSON allows any amount of whitespace: ~60 TLS records, each read in TLS_READ_SIZE pieces.
    body = b'{"name": "padded"' + b" " * (60 * TLS_READ_SIZE) + b"}"
    async with serving(replace(files_settings, http_port=0), redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            answer = await client.post(
                f"https://localhost:{server.api_port}/task/",
                content=body,
                headers={"content-type": "application/json"},
            )
    assert answer.status_code == 201, answer.text
    assert json.loads(answer.text)["name"] == "padded"


async def test_connections_share_one_read_buffer_and_keep_their_own_bytes(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    # Two clients (asyncio's TLS, patched like the server's) send their bodies at once; JSON
    # allows any amount of whitespace, so each body spans 8 records before its name.
    names = ("first", "second")
    bodies = [b"{" + b" " * (8 * TLS_READ_SIZE) + b'"name": "%s"}' % n.encode() for n in names]
    async with serving(replace(files_settings, http_port=0), redirect=False) as server:
        streams = [
            await asyncio.open_connection(
                "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
            )
            for _ in bodies
        ]
        protocols = [writer.transport._ssl_protocol for _, writer in streams]  # type: ignore[attr-defined]
        assert all(protocol._ssl_buffer is None for protocol in protocols)
        assert protocols[0].get_buffer(-1) is protocols[1].get_buffer(-1)
        for (_, writer), body in zip(streams, bodies, strict=True):
            writer.write(
                b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        for (reader, writer), name in zip(streams, names, strict=True):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 201 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert json.loads(await reader.readexactly(length))["name"] == name
            writer.close()
