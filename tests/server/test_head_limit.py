"""The documented 16 KiB request-head limit holds on the API listener too (issue 14).

Hypercorn reads 64 KiB at a time and h11 checks its size limit on incomplete heads only: a
~63 KiB head in one read was served. Here it gets 431 and a close, over HTTP/1.1; over HTTP/2
h2 refuses a header list over SETTINGS_MAX_HEADER_LIST_SIZE.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace

import httpx
import pytest

from apiclub.server.config import MAX_REQUEST_HEAD
from apiclub.settings import Settings, TlsMode
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio


def head_with(padding: int) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * padding + b"\r\n\r\n"


async def answer_to(port: int, context: ssl.SSLContext | None, head: bytes) -> bytes:
    hostname = "localhost" if context else None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=hostname
    )
    writer.write(head)  # one write: one read of up to 64 KiB on a plain listener
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("tls", [False, True])
async def test_a_head_over_16_kib_in_one_read_is_431_and_closed(
    files_settings: Settings, trust_context: ssl.SSLContext, tls: bool
) -> None:
    # Plain: `serve --tls off` behind a proxy, where Hypercorn reads 64 KiB at once (over TLS
    # it reads a record, 16 KiB, at a time, and h11's own check sees the head incomplete).
    settings = files_settings if tls else replace(files_settings, tls=TlsMode.OFF)
    context = trust_context if tls else None
    async with serving(settings, redirect=False) as server:
        over = await answer_to(server.api_port, context, head_with(60 * 1024))
        under = await answer_to(server.api_port, context, head_with(MAX_REQUEST_HEAD - 1024))
    assert over.startswith(b"HTTP/1.1 431 "), over[:100]
    assert b"connection: close" in over.lower()
    assert under.startswith(b"HTTP/1.1 200 "), under[:100]


async def test_an_h2_header_list_over_16_kib_is_refused(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings, redirect=False) as server:
        url = f"https://localhost:{server.api_port}/"
        async with httpx.AsyncClient(verify=trust_context, http2=True) as client:
            ok = await client.get(url, headers={"x-pad": "a" * 8 * 1024})
            assert (ok.status_code, ok.http_version) == (200, "HTTP/2")
            with pytest.raises(httpx.HTTPError):
                await client.get(url, headers={"x-pad": "a" * 40 * 1024})
