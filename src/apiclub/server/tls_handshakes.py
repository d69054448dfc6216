"""Count failed TLS handshakes: asyncio reports them to no one but its own debug log.

A failed handshake never reaches Hypercorn (the transport closes before the protocol gets a
connection) nor our SNI callback when it fails earlier (no shared version or cipher, plain
HTTP on the TLS port). asyncio's `SSLProtocol._on_handshake_complete(handshake_exc)` is the one
place that sees every outcome; this wraps it to `observe.emit("tls.handshake_failed")` when
`handshake_exc` is set. Checked for the Python versions whose sslproto has that method
(3.11 to 3.13: the asyncio rewrite of 3.11); on others nothing is patched and a warning says
the failure counter stays 0.
"""

from __future__ import annotations

import asyncio.sslproto
import logging
import sys
from typing import Any

from apiclub.observe import emit

logger = logging.getLogger("apiclub.server")

SUPPORTED = ((3, 11), (3, 12), (3, 13))
_PATCHED = "_apiclub_counts_handshake_failures"


def count_handshake_failures() -> bool:
    """Make this process emit `tls.handshake_failed` per failed handshake; idempotent.

    Returns whether the hook is in place.
    """
    protocol = asyncio.sslproto.SSLProtocol
    if getattr(protocol, _PATCHED, False):
        return True
    original = getattr(protocol, "_on_handshake_complete", None)
    if sys.version_info[:2] not in SUPPORTED or original is None:
        logger.warning(
            "TLS handshake failures are not counted on Python %d.%d (its asyncio differs)",
            *sys.version_info[:2],
        )
        return False

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            emit("tls.handshake_failed")
        original(self, handshake_exc)

    protocol._on_handshake_complete = on_handshake_complete  # type: ignore[method-assign]
    setattr(protocol, _PATCHED, True)
    return True
