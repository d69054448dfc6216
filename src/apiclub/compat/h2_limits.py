"""Make Hypercorn's per-connection HTTP/2 stream limit hold within one read, and drop stray frames.

Hypercorn 0.18 mitigates HTTP/2 rapid reset (CVE-2023-44487, pgjones/hypercorn#146) by sending
GOAWAY once a connection has opened `keep_alive_max_requests` streams. But it checks only after
creating each stream, and one read of a flooding client carries thousands of HEADERS +
RST_STREAM pairs: every stream in the read still ran the app, far past the limit, and each
drew one more GOAWAY, with a growing last stream id
(RFC 9113 6.8: it must not grow). A DATA frame for a stream Hypercorn no longer tracks (refused
during shutdown, or past the limit) raises `KeyError` and tears the whole connection down with
its other streams.

This wraps `H2Protocol._handle_events`: streams past the limit are not started (the one GOAWAY
names the last stream that was, RFC 9113 6.8, so the client knows the rest are safe to retry),
and frames for streams that are not tracked are dropped, their DATA still credited to the
connection's flow-control window.
"""

from __future__ import annotations

import logging
from typing import Any

import h2.events
from hypercorn.protocol.h2 import H2Protocol

logger = logging.getLogger("apiclub.server")

STREAM_EVENTS = (h2.events.DataReceived, h2.events.StreamEnded, h2.events.StreamReset)


def limit_h2_streams() -> None:
    """Patch Hypercorn's HTTP/2 protocol as the module docstring says."""
    original = H2Protocol._handle_events

    async def handle_events(self: Any, events: list[h2.events.Event]) -> None:
        kept, last_started = _within_limit(self, events)
        connection = self.connection
        if last_started is None:
            await original(self, kept)
            return
        # Hypercorn's GOAWAY names h2's highest inbound stream, which already counts the
        # streams just refused: name the last one started instead.
        highest = connection.highest_inbound_stream_id
        connection.highest_inbound_stream_id = last_started
        try:
            await original(self, kept)
        finally:
            connection.highest_inbound_stream_id = highest

    H2Protocol._handle_events = handle_events  # type: ignore[method-assign]


def _within_limit(protocol: Any, events: list[h2.events.Event]) -> tuple[list[Any], int | None]:
    """The events to hand to Hypercorn, and the last stream started if some were refused."""
    budget = protocol.config.keep_alive_max_requests + 1 - protocol.keep_alive_requests
    terminated = protocol.context.terminated.is_set()
    kept: list[Any] = []
    started: set[int] = set()
    refused = 0
    last_started: int | None = None
    for event in events:
        if isinstance(event, h2.events.RequestReceived) and not terminated:
            if budget <= 0:
                refused += 1
                continue
            budget -= 1
            started.add(event.stream_id)
            last_started = event.stream_id
        elif isinstance(event, STREAM_EVENTS) and not (
            event.stream_id in protocol.streams or event.stream_id in started
        ):
            if isinstance(event, h2.events.DataReceived):
                protocol.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            continue
        kept.append(event)
    if not refused:
        return kept, None
    logger.info(
        "HTTP/2 client %s opened more than %d streams on one connection: %d refused, GOAWAY sent",
        protocol.client,
        protocol.config.keep_alive_max_requests,
        refused,
    )
    return kept, last_started
