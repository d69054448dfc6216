"""A request target cannot forge a log line on either listener: paths are logged as sent."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

FORGING_PATH = b"/x%0d%0aapiclub.redirect%20INFO%20forged"


def request(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


async def exchange(port: int, sent: bytes, context: ssl.SSLContext | None = None) -> bytes:
    """Send `sent`, read the answer until the server closes."""
    name = "localhost" if context is not None else None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=name
    )
    writer.write(sent)
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return answer


async def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    """The access lines, once `count` have been written (Hypercorn logs after it answers)."""
    for _ in range(100):
        lines = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.05)
    return lines


def control_characters(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in r.getMessage())
    ]


async def test_an_encoded_crlf_is_one_escaped_access_line_on_each_listener(
    files_settings: Settings, trust_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="apiclub.access"):
        async with serving(files_settings) as server:
            redirected = await exchange(server.redirect_port, request(FORGING_PATH))
            answered = await exchange(server.api_port, request(FORGING_PATH), trust_context)
            lines = await access_lines(caplog, 2)
    assert redirected.startswith(b"HTTP/1.1 301 ")
    assert answered.startswith(b"HTTP/1.1 404 ")
    assert len(lines) == 2, lines
    assert all(f'"GET {FORGING_PATH.decode()} 1.1"' in line for line in lines), lines
    assert not control_characters(caplog.records)


@pytest.mark.parametrize(
    "raw", [b"\x01", b"\x1b", b"\x7f", b"\t"], ids=["soh", "esc", "del", "tab"]
)
async def test_a_raw_control_character_is_refused_and_logs_none(
    files_settings: Settings,
    trust_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
) -> None:
    # Both parsers (llhttp, h11) refuse a raw control character in the target (RFC 9112 3.2):
    # the request is never logged as a request, and no log line carries the character.
    sent = request(b"/a" + raw + b"\r\napiclub.redirect INFO forged")
    with caplog.at_level(logging.DEBUG):
        async with serving(files_settings) as server:
            redirected = await exchange(server.redirect_port, sent)
            answered = await exchange(server.api_port, sent, trust_context)
    assert redirected.startswith(b"HTTP/1.1 400 ")
    assert answered.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if "forged" in r.getMessage()]
    assert not control_characters(caplog.records)
