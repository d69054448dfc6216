"""The TCP transport under asyncio's TLS transport, and the attributes the patches set.

Hypercorn closes a connection's writer twice (`_initiate_server_close`, then `_close`); the
second `close()` of a TLS transport drops its link to the TLS protocol (CPython gh-98539),
after which its `abort()` does nothing and even `get_extra_info` fails. Only the TCP transport
under it, kept from the start, can still be cut.
"""

from __future__ import annotations

import asyncio

SOCKET_TRANSPORT = "_apiclub_socket_transport"
"""Set on each Hypercorn `TCPServer` as it starts: the TCP transport under its TLS one."""
TASK = "_apiclub_task"
"""Set on each Hypercorn `TCPServer` as it starts: the task that runs the connection."""


def socket_transport(transport: asyncio.BaseTransport) -> asyncio.WriteTransport:
    """The TCP transport under asyncio's TLS transport (or `transport` itself, without TLS)."""
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    tcp: asyncio.WriteTransport | None = getattr(ssl_protocol, "_transport", None)
    return tcp if tcp is not None else transport  # type: ignore[return-value]
