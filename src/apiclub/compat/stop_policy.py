"""How a stop treats each open connection: drain, answer its first request, or close and cut.

The decisions behind the stop patches of hypercorn_stop.py, kept apart so that each rule has
its reason beside it:

- an idle keep-alive connection closes at once, and its TCP socket is cut if the client does
  not answer close_notify within CLOSE_NOTIFY_WAIT (an idle pool held every stop for 15 s);
- HTTP/2 gets GOAWAY and H2_STOP_LINGER to close first (RFC 9113 6.8);
- the upstream connections of a trusted proxy drain (nginx does not resend a POST);
- a connection accepted just before the stop gets its first request answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from h2.connection import ConnectionState
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat.transports import SOCKET_TRANSPORT
from apiclub.units import SECONDS

H2_STOP_LINGER = 0.25 * SECONDS
"""How long a stopping server waits for an HTTP/2 client to close after GOAWAY: a round trip
across continents, and short enough for a stop within a second."""
CLOSE_NOTIFY_WAIT = 0.2 * SECONDS
"""How long a connection closed during a stop waits for the client's TLS close_notify before
its TCP socket is cut: a client that answers does so within a round trip; one that never
answers (an idle pool: browsers, httpx) would hold the exit for asyncio's 30 s."""
FIRST_REQUEST_WAIT = 0.5 * SECONDS
"""How long a stop waits for the first request of a connection accepted just before it."""
SILENT_CUT_DELAY = 0.02 * SECONDS
"""The cut of an HTTP/2 connection whose client stayed silent through the linger: just
time for the close_notify to be written."""
LINGER_POLL = 0.02 * SECONDS

_CLOSING = "_apiclub_closing"
_OPENED_BEFORE_STOP = "_apiclub_opened_before_stop"
"""Attributes the patches set: closing decided, opened before the stop."""


async def _say_goaway_and_linger(server: Any, protocol: H2Protocol) -> bool:
    """At a stop, send GOAWAY (if not yet sent) and let the client close first, for a moment.

    Returns whether the client closed its side within the linger.

    Hypercorn closed an HTTP/2 connection the instant its last stream ended, or with no GOAWAY
    at all when it was idle. A request the client was sending meanwhile then met a closed
    socket: the kernel answers with a reset, and the client (httpx, for one) fails every
    stream of the connection, the one whose answer was already on its way included: a POST
    stored, its client told it failed (tests/reliability/test_h2_abuse.py; figures in
    docs/reliability.md). RFC 9113 6.8: after GOAWAY, allow at least a round trip for streams
    in flight. Requests that arrive meanwhile are dropped unprocessed (`_unless_closed`), which
    the GOAWAY's last stream id tells the client, so it may retry them elsewhere.
    """
    if protocol.connection.state_machine.state is not ConnectionState.CLOSED:
        protocol.connection.close_connection()
        await protocol._flush()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + H2_STOP_LINGER
    while not server.reader.at_eof() and loop.time() < deadline:
        await asyncio.sleep(LINGER_POLL)
    return bool(server.reader.at_eof())


def cut_after_close_wait(server: Any, delay: float = CLOSE_NOTIFY_WAIT) -> None:
    """Cut the TCP socket of a connection closed during a stop after `delay` seconds.

    Its TLS close waits for the client's close_notify (up to asyncio's 30 s
    `SSL_SHUTDOWN_TIMEOUT`) and Hypercorn's stop waits for that close: an idle keep-alive
    pool held every stop for the grace period and the cut after it. Nothing is lost by the
    cut: no request runs on the connection, and one that arrives is not started
    (`_CLOSING`). Cutting a connection already closed does nothing.
    """
    transport: asyncio.WriteTransport | None = getattr(server, SOCKET_TRANSPORT, None)
    if transport is None:
        return
    loop = asyncio.get_running_loop()

    def cut() -> None:
        # An answer still on its way to a slow reader is not truncated: wait for it (the
        # launcher's cut at the end of the grace period bounds that).
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            loop.call_later(delay, cut)
            return
        transport.abort()

    loop.call_later(delay, cut)


def _drains_at_stop(protocol: Any) -> bool:
    """Whether a stop keeps this idle connection open for its keep-alive timeout.

    Only plain HTTP/1.1 from a trusted proxy, the upstream side of nginx (`APICLUB_TLS=off`,
    `APICLUB_TRUSTED_PROXIES`): nginx does not resend a POST it has sent on an idle upstream
    connection that we close in that instant (a 502 for its client, seen in a rolling
    restart). Draining answers what arrives, with `Connection: close`. HTTP/2 says GOAWAY
    instead; direct clients, TLS or not, get the prompt close.
    """
    if not isinstance(protocol, H11Protocol) or protocol.ssl:
        return False
    drains = getattr(protocol.config, "drains_at_stop", None)
    client = protocol.client
    return drains is not None and client is not None and bool(drains(client[0]))


def _is_fresh(protocol: Any) -> bool:
    """An HTTP/1.1 connection that has not yet started a request: its client connected before
    the stop and is sending its first one, which is answered (with `Connection: close`);
    closing it would fail a request the client had every right to send. At a reload, the
    kernel hands such connections to the old workers until they stop accepting."""
    return (
        isinstance(protocol, H11Protocol)
        and protocol.keep_alive_requests == 0
        # Past its TLS handshake before the stop: Hypercorn's stop waits only for those,
        # then closes the database; a later one is refused unstarted (safe to retry).
        and getattr(protocol, _OPENED_BEFORE_STOP, False)
    )


def _has_request(protocol: Any) -> bool:
    if isinstance(protocol, H2Protocol):
        return bool(protocol.streams)
    return getattr(protocol, "stream", None) is not None
