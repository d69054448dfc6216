"""Read TLS connections into one record's worth of buffer, not 256 KiB each.

asyncio's TLS transport (`asyncio.sslproto.SSLProtocol`, Python 3.11) allocates a 256 KiB
read buffer for every connection at accept time and zero-fills it, so every page is resident
(CPython gh-109534); it also asks OpenSSL for up to 256 KiB of plaintext per read. Measured
here with wrk at 512 keep-alive connections: peak RSS 253 MiB, 130 MiB with this, for no
change in requests per second. One TLS record carries at most 16 KiB of plaintext plus up to
256 bytes of expansion and a 5-byte header (RFC 8446 5.2), so a read of TLS_READ_SIZE takes a
whole record, and a large body simply takes more reads.
"""

from __future__ import annotations

import asyncio.sslproto

KIB = 1024
TLS_READ_SIZE = 17 * KIB
"""Bytes per read: one full TLS record (16 KiB + 256 + 5) fits."""


def shrink_tls_read_buffers() -> None:
    """Set asyncio's per-connection TLS read size for this process; idempotent."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_SIZE
