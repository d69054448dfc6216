"""Count failed TLS handshakes: asyncio reports them to no one but its own debug log.

A failed handshake never reaches Hypercorn (the transport closes before the protocol gets a
connection) nor our SNI callback when it fails earlier (no shared version or cipher, plain
HTTP on the TLS port). asyncio's `SSLProtocol._on_handshake_complete(handshake_exc)` is the one
place that sees every outcome; this wraps it to `observe.emit("tls.handshake_failed")` when
`handshake_exc` is set. Written for the Python versions whose sslproto has that method (3.11
to 3.13: the asyncio rewrite of 3.11).
"""

from __future__ import annotations

import asyncio.sslproto
from typing import Any

from apiclub.observe import emit


def count_handshake_failures() -> None:
    """Make this process emit `tls.handshake_failed` per failed handshake."""
    protocol = asyncio.sslproto.SSLProtocol
    original = protocol._on_handshake_complete

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            emit("tls.handshake_failed")
        original(self, handshake_exc)

    protocol._on_handshake_complete = on_handshake_complete  # type: ignore[method-assign]
