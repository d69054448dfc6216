"""Host header games on both ports: never a redirect to a host we do not serve, never a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio


async def exchange(port: int, request: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def status_and_location(answer: bytes) -> tuple[int, str | None]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    location = next(
        (
            line.split(":", 1)[1].strip()
            for line in head[1:]
            if line.lower().startswith("location:")
        ),
        None,
    )
    return int(head[0].split(" ")[1]), location


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (
            b"GET http://evil.example/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "https://localhost:{}/x",
        ),
        (b"GET http://localhost/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", None),
        (b"GET /x HTTP/1.1\r\nHost: LOCALHOST.:80\r\n\r\n", "https://localhost:{}/x"),
        (b"GET /x HTTP/1.1\r\nHost: localhost.evil.example\r\n\r\n", None),
        (b"GET /x HTTP/1.1\r\nHost: b\xc3\xbccher.example\r\n\r\n", None),
        (b"GET /x HTTP/1.1\r\nHost: localhost@evil.example\r\n\r\n", None),
        (b"GET /x HTTP/1.1\r\nHost: \r\n\r\n", None),
    ],
    ids=[
        "absolute-form",
        "absolute-form-ours",
        "case-dot-port",
        "suffix",
        "idn-raw",
        "userinfo",
        "empty",
    ],
)
async def test_port_80_redirects_only_to_configured_hosts(
    files_settings: Settings, request_bytes: bytes, expected: str | None
) -> None:
    async with serving(files_settings) as server:
        answer = await exchange(server.redirect_port, request_bytes)
    status, location = status_and_location(answer)
    if expected is None:
        assert 400 <= status < 500, answer
        assert location is None
    else:
        assert (status, location) == (301, expected.format(server.api_port))


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example",
        b"localhost.evil.example",
        b"b\xc3\xbccher.example",
        b"",
        b"localhost:99999x",
    ],
)
async def test_https_refuses_hosts_not_configured_without_5xx(
    files_settings: Settings, trust_context: ssl.SSLContext, host: bytes
) -> None:
    async with serving(files_settings, redirect=False) as server:
        answer = await exchange(
            server.api_port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", trust_context
        )
    status, location = status_and_location(answer)
    assert 400 <= status < 500, answer
    assert location is None
