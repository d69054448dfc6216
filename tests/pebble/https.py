"""HTTPS to 127.0.0.1 under a public-looking name (SNI and verification), over keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cryptography import x509


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: str
    leaf: x509.Certificate

    async def get(self, path: str = "/") -> tuple[int, bytes]:
        """One HTTP/1.1 request on this connection, kept alive."""
        request = f"GET {path} HTTP/1.1\r\nHost: {self.name}\r\n\r\n"
        self.writer.write(request.encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return status, body


@contextlib.asynccontextmanager
async def connect(port: int, client: ssl.SSLContext, name: str) -> AsyncIterator[Connection]:
    """Connect to 127.0.0.1:port as if DNS had resolved `name` there; verifies the chain."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname=name
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        yield Connection(reader, writer, name, x509.load_der_x509_certificate(der))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def served_leaf(port: int, client: ssl.SSLContext, name: str) -> x509.Certificate:
    """The leaf a fresh connection gets (raises `ssl.SSLCertVerificationError` if untrusted)."""
    async with connect(port, client, name) as connection:
        return connection.leaf


async def wait_for_trusted(
    port: int, client: ssl.SSLContext, name: str, *, differs_from: int | None = None
) -> x509.Certificate:
    """Poll new connections until one verifies with `client` (and has a new serial)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            leaf = await served_leaf(port, client, name)
        except ssl.SSLCertVerificationError:
            leaf = None
        if leaf is not None and leaf.serial_number != differs_from:
            return leaf
        if time.monotonic() > deadline:
            raise AssertionError(f"no trusted certificate for {name} within 30 s")
        await asyncio.sleep(0.05)
