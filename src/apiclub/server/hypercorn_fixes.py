"""A workaround for a Hypercorn bug that turns a graceful stop into lost requests.

Hypercorn 0.17-0.18's `TCPServer._close` lets `ssl.SSLError`
("APPLICATION_DATA_AFTER_CLOSE_NOTIFY": the client sent its next request as we closed) and
`TimeoutError` ("SSL shutdown timed out") escape (pgjones/hypercorn#261, #264, open). During a
stop, that exception fails Hypercorn's `gather` over all connections, so `serve()` returns at
once and every other in-flight request is cancelled: clients get 500s and an aiosqlite worker
thread is left behind that keeps the process from exiting. The connection is closed either way,
so the error is logged at debug level and dropped.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed, RawData

logger = logging.getLogger("apiclub.server")

_PATCHED = "_apiclub_tolerates_close_errors"


def tolerate_tls_close_errors() -> None:
    """Make `TCPServer._close` swallow TLS close errors; idempotent."""
    if getattr(TCPServer, _PATCHED, False):
        return
    original = TCPServer._close

    async def close(self: Any) -> None:
        try:
            await original(self)
        except (ssl.SSLError, TimeoutError) as exc:
            # The original's `finally` already stopped the idle task.
            logger.debug("TLS error while closing a connection (hypercorn#261): %s", exc)

    TCPServer._close = close  # type: ignore[method-assign]
    setattr(TCPServer, _PATCHED, True)


_PATCHED_SEND = "_apiclub_tolerates_lost_transport"


def tolerate_writes_after_connection_lost() -> None:
    """Treat a write to a TLS transport that is already gone as a close; idempotent.

    When a client resets the connection while Hypercorn still has bytes to send (an HTTP/2
    flood answered with GOAWAY), asyncio's TLS transport has dropped its protocol and `write`
    raises `AttributeError` instead of `ConnectionError` (CPython sslproto.py), which
    Hypercorn's `protocol_send` does not catch: an unhandled-exception traceback per connection.
    """
    if getattr(TCPServer, _PATCHED_SEND, False):
        return
    original = TCPServer.protocol_send

    async def protocol_send(self: Any, event: Any) -> None:
        if isinstance(event, RawData) and self.writer.is_closing():
            await self.protocol.handle(Closed())
            return
        await original(self, event)

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    setattr(TCPServer, _PATCHED_SEND, True)
