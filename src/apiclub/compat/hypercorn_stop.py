"""Workarounds for Hypercorn 0.18 bugs that turn a graceful stop into lost or hanging requests.

Each function below applies one patch (`patches.install` applies them all, in order, once);
each names its bug:
- `TCPServer._close` lets TLS close errors escape (pgjones/hypercorn#261, #264): 500s, no exit.
- `protocol_send` and `_read_data` turn I/O on a vanished TLS transport into a traceback.
- A request arriving as an idle keep-alive connection is closed is run but never answered.
- HTTP/2: a request arriving after the stop's GOAWAY crashes the stop, and closing the
  connection under the client's late frames resets it, failing streams already answered.
- A stop must be able to cut the connections it waited for long enough: `track_connections`
  reports each one to `server.connections`, which cuts its TCP transport (`transports.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Protocol

import h2.events
import h11
from h2.connection import ConnectionState
from hypercorn.asyncio.tcp_server import MAX_RECV, TCPServer
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Response
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat.h2_limits import STREAM_EVENTS
from apiclub.compat.stop_policy import (
    _CLOSING,
    _OPENED_BEFORE_STOP,
    CLOSE_NOTIFY_WAIT,
    FIRST_REQUEST_WAIT,
    SILENT_CUT_DELAY,
    _drains_at_stop,
    _has_request,
    _is_fresh,
    _say_goaway_and_linger,
    cut_after_close_wait,
)
from apiclub.compat.transports import SOCKET_TRANSPORT, TASK, socket_transport

logger = logging.getLogger("apiclub.server")

_CONNECTION_CLOSE = (b"connection", b"close")


def tolerate_tls_close_errors() -> None:
    """Make `TCPServer._close` swallow TLS close errors.

    Hypercorn 0.17-0.18's `TCPServer._close` lets `ssl.SSLError`
    ("APPLICATION_DATA_AFTER_CLOSE_NOTIFY": the client sent its next request as we closed) and
    `TimeoutError` ("SSL shutdown timed out") escape (pgjones/hypercorn#261, #264, open). During
    a stop, that exception fails Hypercorn's `gather` over all connections, so `serve()` returns
    at once and every other in-flight request is cancelled: clients get 500s. The connection is
    closed either way, so the error is logged at debug level and dropped.
    """
    original = TCPServer._close

    async def close(self: Any) -> None:
        if self.context.terminated.is_set():
            # A connection closed during a stop (its last answer said `Connection: close`).
            cut_after_close_wait(self)
        try:
            await original(self)
        except (ssl.SSLError, TimeoutError) as exc:
            # The original's `finally` already stopped the idle task.
            logger.debug("TLS error while closing a connection (hypercorn#261): %s", exc)

    TCPServer._close = close  # type: ignore[method-assign]


def tolerate_writes_after_connection_lost() -> None:
    """Treat a write to a TLS transport that is already gone as a close.

    When a client resets the connection while Hypercorn still has bytes to send (an HTTP/2
    flood answered with GOAWAY), asyncio's TLS transport has dropped its protocol and `write`
    raises `AttributeError` instead of `ConnectionError` (CPython sslproto.py), which
    Hypercorn's `protocol_send` does not catch: an unhandled-exception traceback per connection.
    """
    original = TCPServer.protocol_send

    async def protocol_send(self: Any, event: Any) -> None:
        if isinstance(event, RawData) and self.writer.is_closing():
            await self.protocol.handle(Closed())
            return
        await original(self, event)

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]


def tolerate_reads_after_connection_lost() -> None:
    """Treat a read from a TLS transport that is already gone as a close.

    The read side of the same CPython sslproto.py gap as `tolerate_writes_after_connection_lost`
    (gh-98539: a second `close()` drops the transport's TLS protocol): the reader's
    `resume_reading()` then raises `AttributeError: 'NoneType' object has no attribute
    '_resume_reading'`, which `TCPServer._read_data` does not catch. Seen in
    some HTTP/2 rapid-reset floods, as a traceback per connection.
    """

    async def read_data(self: Any) -> None:
        # Hypercorn 0.18's `_read_data`, plus the AttributeError of a closed TLS transport.
        while not self.reader.at_eof():
            try:
                data = await asyncio.wait_for(self.reader.read(MAX_RECV), self.config.read_timeout)
            except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
                break
            except AttributeError:
                if not self.writer.is_closing():
                    raise
                break
            await self.protocol.handle(RawData(data))
        await self.protocol.handle(Closed())

    TCPServer._read_data = read_data  # type: ignore[method-assign]


def close_idle_connections_safely() -> None:
    """Close a keep-alive connection only while no request runs on it.

    Hypercorn closes an idle connection when the server stops (or at the keep-alive timeout),
    and a request arriving at that instant was run but never answered (a POST stored, the
    client told nothing), three ways:

    - `TCPServer._idle_timeout` waits with `asyncio.wait_for` and is cancelled when a request
      starts; Python 3.11's `wait_for` swallows that cancellation if the stop came in the same
      instant (CPython gh-86296, fixed in 3.12): the connection closes under the new request.
    - The close runs in a shielded task one step later; a request may start in between.
    - After `writer.close()` asyncio's TLS transport still hands the bytes already received to
      the reader (CPython sslproto.py `_do_flush` calls `_do_read`) and drops every answer
      written from then on (`_write_appdata` in the FLUSHING/SHUTDOWN state).

    This waits as Hypercorn does, then does not close if its cancellation was requested (and
    swallowed: `Task.cancelling()` still counts it) or a request is in flight (the request's
    end makes the connection idle again and Hypercorn restarts the wait), and marks the
    protocol closing in the same step it decides. (`asyncio.timeout` instead of `wait_for`
    also fixed the race, but under an HTTP/2 flood it let streams past the per-connection
    limit of h2_limits.py, for a reason not found yet.)
    As nginx does, an HTTP/1.1 request whose head completes after that, or after the stop
    began on a connection that has served one, is not started: the connection closes without
    a byte, so the client may safely retry. A request already started finishes, and at a stop
    its answer says `Connection: close` (RFC 9112 9.6; hyperium/hyper#3725 does the same).
    What else a stop does with each connection is stop_policy.py's to decide.
    """
    original_create_stream = H11Protocol._create_stream
    original_stream_send = H11Protocol.stream_send
    original_init = H11Protocol.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        setattr(self, _OPENED_BEFORE_STOP, not self.context.terminated.is_set())

    async def idle_timeout(self: Any) -> None:
        protocol = self.protocol.protocol
        # Behind a proxy (plain HTTP/1.1) drain instead of closing at the stop: see
        # `_drains_at_stop`. The proxy closes its idle upstream connections first (nginx
        # `keepalive_timeout 4s` in deploy/nginx, under our 5 s).
        stopping = (
            asyncio.Event().wait() if _drains_at_stop(protocol) else self.context.terminated.wait()
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping, self.config.keep_alive_timeout)
        if self.context.terminated.is_set() and _is_fresh(protocol):
            # Accepted just before the stop: its first request is on its way (a request that
            # starts cancels this wait, as it cancels the keep-alive one).
            await asyncio.sleep(FIRST_REQUEST_WAIT)
        # A cancellation `wait_for` swallowed still counts (3.11 `Task.cancelling`).
        if asyncio.current_task().cancelling() or _has_request(protocol):  # type: ignore[union-attr]
            return
        setattr(protocol, _CLOSING, True)
        if self.context.terminated.is_set():
            answered = True
            if isinstance(protocol, H2Protocol):
                answered = await _say_goaway_and_linger(self, protocol)
            # A client silent through the linger will not answer close_notify either.
            cut_after_close_wait(self, CLOSE_NOTIFY_WAIT if answered else SILENT_CUT_DELAY)
        await asyncio.shield(self._initiate_server_close())

    async def create_stream(self: Any, request: h11.Request) -> None:
        stopped = (
            self.context.terminated.is_set() and not _drains_at_stop(self) and not _is_fresh(self)
        )
        if getattr(self, _CLOSING, False) or stopped:
            logger.debug("%s: request arrived as the connection closed; not started", self.client)
            await self.send(Closed())
            return
        await original_create_stream(self, request)

    async def stream_send(self: Any, event: Any) -> None:
        if (
            isinstance(event, Response)
            and event.status_code >= HTTPStatus.OK
            and self.context.terminated.is_set()
            # At the limit Hypercorn adds the header itself.
            and self.keep_alive_requests < self.config.keep_alive_max_requests
            and not any(name.lower() == b"connection" for name, _ in event.headers)
        ):
            event = dataclasses.replace(event, headers=[*event.headers, _CONNECTION_CLOSE])
        await original_stream_send(self, event)

    TCPServer._idle_timeout = idle_timeout  # type: ignore[method-assign]
    H11Protocol.__init__ = init  # type: ignore[method-assign]
    H11Protocol._create_stream = create_stream  # type: ignore[method-assign]
    H11Protocol.stream_send = stream_send  # type: ignore[method-assign]


def ignore_h2_requests_after_goaway() -> None:
    """Drop HTTP/2 requests that arrive after our GOAWAY.

    When the server stops, Hypercorn sends GOAWAY as soon as an HTTP/2 connection has no stream
    left (h2's state CLOSED). A request the client sent before it read the GOAWAY still arrives,
    and Hypercorn refuses it with RST_STREAM, which h2 will not send on a closed connection: the
    `ProtocolError` escapes, fails the stop's `gather` over all connections, and requests in
    flight elsewhere are cancelled (500s, exit 1). The GOAWAY already tells the client that
    streams above its last stream id were not processed and may be retried (RFC 9113 6.8).

    Frames that arrive after a stop's GOAWAY are discarded too, before h2 reads them: h2 raises
    `ProtocolError` for any frame on a closed connection, and Hypercorn then closed the socket
    at once, with the client's frames unread. The kernel answers that with a reset, and the
    client (httpx) failed every stream of the connection, the answers already sent included: a
    POST stored, its client told it failed. The connection closes after `_say_goaway_and_linger`.
    """
    original = H2Protocol._handle_events
    original_handle = H2Protocol.handle

    async def handle(self: Any, event: Any) -> None:
        if (
            isinstance(event, RawData)
            and self.context.terminated.is_set()
            and self.connection.state_machine.state is ConnectionState.CLOSED
        ):
            return
        await original_handle(self, event)

    async def handle_events(self: Any, events: list[h2.events.Event]) -> None:
        # Checked as Hypercorn reaches each event, not once per read: the GOAWAY can go out
        # while an earlier event of the same read awaits (the last stream ends meanwhile).
        # Hypercorn only iterates over its `events` once, so an iterator serves as the list.
        await original(self, _unless_closed(self, events))  # type: ignore[arg-type]

    H2Protocol._handle_events = handle_events  # type: ignore[method-assign]
    H2Protocol.handle = handle  # type: ignore[method-assign]


def _unless_closed(protocol: Any, events: list[h2.events.Event]) -> Iterator[h2.events.Event]:
    """`events` without the requests that arrive once the connection closes, nor their frames.

    A dropped request's DATA, END_STREAM and RST_STREAM in the same read go too: Hypercorn
    looks its stream up (`self.streams[stream_id]`) and the `KeyError` fails the stop as the
    `ProtocolError` did. The DATA is still credited to the connection's flow-control window
    (RFC 9113 6.9.1). Frames of a later read are dropped by h2_limits.py (untracked stream).
    """
    dropped: set[int] = set()
    for event in events:
        if isinstance(event, STREAM_EVENTS) and event.stream_id in dropped:
            if isinstance(event, h2.events.DataReceived):
                protocol.connection.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            continue
        closed = getattr(protocol, _CLOSING, False) or (
            protocol.connection.state_machine.state is ConnectionState.CLOSED
        )
        if closed and isinstance(event, h2.events.RequestReceived):
            dropped.add(event.stream_id)
            continue
        yield event


class ConnectionTracker(Protocol):
    """Where `track_connections` reports connections (`server.connections.OpenConnections`)."""

    def opened(self, server: Any) -> None: ...

    def closed(self, server: Any) -> None: ...


class _NoTracker:
    def opened(self, server: Any) -> None:
        pass

    def closed(self, server: Any) -> None:
        pass


tracker: ConnectionTracker = _NoTracker()
"""Set by `patches.install` before the patches go in."""


def track_connections() -> None:
    """Report each open connection to `tracker`, so that a stop can cut it.

    Each remembers its TCP transport and its task (`transports.py`). A connection cancelled
    once the stop began (Hypercorn's graceful timeout, or ours) ends normally: on Python 3.11
    a cancelled `start_server` task makes asyncio log a traceback per connection (CPython
    gh-113538, fixed in 3.12).
    """
    original = TCPServer.run

    async def run(self: Any) -> None:
        setattr(self, SOCKET_TRANSPORT, socket_transport(self.writer.transport))
        setattr(self, TASK, asyncio.current_task())
        tracker.opened(self)
        try:
            await original(self)
        except asyncio.CancelledError:
            if not self.context.terminated.is_set():
                raise
        finally:
            tracker.closed(self)

    TCPServer.run = run  # type: ignore[method-assign]
