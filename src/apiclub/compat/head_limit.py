"""The 16 KiB request-head limit on the API listener, whatever the read size (Hypercorn 0.18).

Hypercorn passes `h11_max_incomplete_size` to h11, which enforces it only on a head still
incomplete after a read: Hypercorn reads up to 64 KiB at a time, so a head of ~63 KiB that
arrives in one read was parsed and served, four times the documented limit. This patch
measures every parsed request head and answers 431 (RFC 6585 5) and closes when it is over
the listener's `h11_max_incomplete_size`, as the port-80 listener does.

HTTP/2: Hypercorn advertises `h2_max_header_list_size` as SETTINGS_MAX_HEADER_LIST_SIZE, but
passes it to h2 as an initial setting, which h2 never treats as a change to acknowledge, so
its HPACK decoder keeps its own 64 KiB limit. The patch sets the decoder's limit to the
advertised one; h2 then refuses a larger header list (a connection error).
"""

from __future__ import annotations

import logging
from typing import Any

import h11
from hypercorn.events import Closed
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

logger = logging.getLogger("apiclub.server")

_REQUEST_LINE_OVERHEAD = len(b"  HTTP/1.1\r\n\r\n")
_FIELD_OVERHEAD = len(b": \r\n")


def head_size(request: h11.Request) -> int:
    """The bytes of `request`'s request line and header fields, as sent (near enough)."""
    size = len(request.method) + len(request.target) + _REQUEST_LINE_OVERHEAD
    return size + sum(len(name) + len(value) + _FIELD_OVERHEAD for name, value in request.headers)


def limit_h11_head() -> None:
    """Patch Hypercorn's HTTP/1.1 protocol as the module docstring says."""
    original = H11Protocol._create_stream

    async def create_stream(self: Any, request: h11.Request) -> None:
        limit = self.config.h11_max_incomplete_size
        if head_size(request) > limit:
            logger.info("refused a request head over %d bytes with 431", limit)
            await self._send_error_response(431)
            await self.send(Closed())
            return
        await original(self, request)

    H11Protocol._create_stream = create_stream  # type: ignore[method-assign]


def limit_h2_header_list() -> None:
    """Make h2's HPACK decoder keep to the header-list size Hypercorn advertises."""
    original = H2Protocol.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.connection.decoder.max_header_list_size = self.config.h2_max_header_list_size

    H2Protocol.__init__ = init  # type: ignore[method-assign]
