"""Read TLS connections through one shared buffer of one record, not 256 KiB each.

asyncio's TLS transport (`asyncio.sslproto.SSLProtocol`, Python 3.11) allocates a 256 KiB
read buffer for every connection at accept time and zero-fills it, so every page is resident
(CPython gh-109534); it also asks OpenSSL for up to 256 KiB of plaintext per read. A buffer of
one record per connection about halves the peak memory of many keep-alive connections, for no
change in requests per second (docs/performance.md, changes 3 and 9). One TLS record carries at most
16 KiB of plaintext plus up to 256 bytes of expansion and a 5-byte header (RFC 8446 5.2), so a
read of TLS_READ_SIZE takes a whole record, and a large body simply takes more reads.

The buffer only carries bytes from `recv_into` to the connection's OpenSSL input: the event
loop calls `get_buffer`, `recv_into` and `buffer_updated` in one step
(`_SelectorSocketTransport._read_ready__get_buffer`), and `buffer_updated` copies the bytes
out. So one buffer per thread (per event loop) serves every connection: 512 idle connections
no longer hold a buffer each between reads.
"""

from __future__ import annotations

import asyncio.sslproto
import threading
from typing import Any

from apiclub.units import KIB

TLS_READ_SIZE = 17 * KIB
"""Bytes per read: one full TLS record (16 KiB + 256 + 5) fits."""

_per_thread = threading.local()


def shrink_tls_read_buffers() -> None:
    """Make asyncio's TLS connections of this process read through one shared buffer."""
    protocol = asyncio.sslproto.SSLProtocol
    protocol.max_size = TLS_READ_SIZE
    original_init = protocol.__init__
    original_buffer_updated = protocol.buffer_updated

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._ssl_buffer = self._ssl_buffer_view = None  # the shared one serves instead

    def get_buffer(self: Any, n: int) -> memoryview:
        return _shared_buffer()

    def buffer_updated(self: Any, nbytes: int) -> None:
        # asyncio's own method copies the bytes from `_ssl_buffer_view` first, then drives
        # the handshake or the read: lend it the shared buffer for that one call.
        self._ssl_buffer_view = _shared_buffer()
        try:
            original_buffer_updated(self, nbytes)
        finally:
            self._ssl_buffer_view = None

    protocol.__init__ = init  # type: ignore[method-assign]
    protocol.get_buffer = get_buffer  # type: ignore[method-assign]
    protocol.buffer_updated = buffer_updated  # type: ignore[method-assign]


def _shared_buffer() -> memoryview:
    view: memoryview | None = getattr(_per_thread, "view", None)
    if view is None:
        view = _per_thread.view = memoryview(bytearray(TLS_READ_SIZE))
    return view
