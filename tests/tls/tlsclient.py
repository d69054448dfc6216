"""A real TLS echo server on 127.0.0.1 port 0 and a client that reports what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class Peer:
    serial: int
    alpn: str | None
    version: str | None
    names: tuple[str, ...]


@contextlib.asynccontextmanager
async def serve_tls(context: ssl.SSLContext) -> AsyncIterator[int]:
    """Echo lines back over TLS; yield the port."""
    handlers: set[asyncio.Task[None]] = set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 5)


@contextlib.asynccontextmanager
async def open_tls(
    port: int, client: ssl.SSLContext, server_hostname: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, Peer]]:
    """Connect to 127.0.0.1:port verifying `server_hostname` (no SNI when it is an IP)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, server_hostname=server_hostname
    )
    try:
        sslobj = writer.get_extra_info("ssl_object")
        cert = x509.load_der_x509_certificate(sslobj.getpeercert(binary_form=True))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
        peer = Peer(cert.serial_number, sslobj.selected_alpn_protocol(), sslobj.version(), names)
        yield reader, writer, peer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def echo_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"ping\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), 5) == b"ping\n"


async def handshake(port: int, client: ssl.SSLContext, server_hostname: str) -> Peer:
    """One full connection: handshake, one echoed line, close."""
    async with open_tls(port, client, server_hostname) as (reader, writer, peer):
        assert await echo_ok(reader, writer)
        return peer


def client_context(cafile: object) -> ssl.SSLContext:
    """A client that verifies the chain against `cafile` and checks the host name."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
