"""The whole-request deadline on the API listener (Hypercorn 0.18): head and body in time.

Hypercorn's read loop (`TCPServer._read_data`) waits `read_timeout` for each read, and the wait
restarts with every read: a request head or body sent a byte every 29 s holds its connection
(and, past the open-file limit, everyone else's) for ever. This patch gives the loop a reader
that also ends the wait at the deadline of the request being received (`limits.RequestClock`):
the loop then sees a timeout, as for a silent client, and closes the connection.

A request is being received from its first byte until the protocol has all of it: for
HTTP/1.1 until h11 reaches DONE (a head with no body gets there at once) or goes back to IDLE
with nothing buffered; for HTTP/2 while a stream may still receive (OPEN or HALF_CLOSED_LOCAL).
Waiting for the app's answer, or idle between requests, the clock is stopped and Hypercorn's
own timeouts apply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import h11
from h2.stream import StreamState
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat.transports import socket_transport

if TYPE_CHECKING:
    from apiclub.server.limits import ConnectionCap, RequestClock, RequestDeadline

logger = logging.getLogger("apiclub.server")

DEADLINE_ATTRIBUTE = "apiclub_request_deadline"
"""Set on a Hypercorn `Config` to a `RequestDeadline`: its listener enforces it."""
_RECEIVING_H2 = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)


def enforce_request_deadline() -> None:
    """Patch Hypercorn's read loop as the module docstring says."""
    original = TCPServer._read_data

    async def read_data(self: Any) -> None:
        deadline: RequestDeadline | None = getattr(self.config, DEADLINE_ATTRIBUTE, None)
        if deadline is None:
            await original(self)
            return
        cap: ConnectionCap | None = getattr(self.config, "connection_cap", None)
        # Cutting the TCP transport ends the read at once (as `OpenConnections.abort` does).
        tcp = socket_transport(self.writer.transport)
        clock = deadline.clock(cap, tcp.abort)
        self.reader = _DeadlineReader(self, clock)
        try:
            await original(self)
        finally:
            clock.stop()

    TCPServer._read_data = read_data  # type: ignore[method-assign]


class _DeadlineReader:
    """The connection's `StreamReader`, whose reads also end at the request's deadline."""

    def __init__(self, server: Any, clock: RequestClock) -> None:
        self._server = server
        self._reader: asyncio.StreamReader = server.reader
        self._clock = clock

    def at_eof(self) -> bool:
        return self._reader.at_eof()

    async def read(self, size: int = -1) -> bytes:
        loop = self._server.loop
        clock = self._clock
        if clock.running and not receiving(self._server.protocol.protocol):
            clock.stop()
        due = clock.deadline()
        if due is None:
            data = await self._reader.read(size)
        else:
            try:
                data = await asyncio.wait_for(self._reader.read(size), max(0.0, due - loop.time()))
            except TimeoutError:
                logger.debug("a request did not arrive within its deadline: closing")
                # A partial head counts as idle to Hypercorn, whose keep-alive task would hold
                # the connection open (its task group waits for it) for keep_alive_timeout.
                await self._server.idle_task.stop()
                raise
        clock.received(len(data), loop.time())
        return data


def receiving(protocol: Any) -> bool:
    """Whether `protocol` (Hypercorn's H11Protocol or H2Protocol) is receiving a request."""
    if isinstance(protocol, H11Protocol):
        connection = protocol.connection
        state = getattr(connection, "their_state", None)
        if state is h11.IDLE:
            return bool(connection.trailing_data[0])  # part of the next head
        return state is h11.SEND_BODY
    if isinstance(protocol, H2Protocol):
        streams = protocol.connection.streams.values()
        return any(stream.state_machine.state in _RECEIVING_H2 for stream in streams)
    return False
