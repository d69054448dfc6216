"""The port-80 listener: an asyncio protocol around httptools writing `RedirectApp`'s answers.

Why not Hypercorn: a 301 needs one parse and one write, but Hypercorn + h11 + an ASGI call
cost many times that in Python per request (docs/performance.md has the figures against
nginx's `return 301`). httptools wraps llhttp, Node.js's HTTP/1.1 parser in C, as uvicorn
does. The limits are the API listener's (config.py): request head, read and keep-alive
timeouts, requests per connection, and the whole-request deadline of `limits`: head and body
must arrive within the request timeout of its first byte (extended by its minimum rate, up to
its maximum time), as nginx's `client_header_timeout`: a timeout restarted by every read would
let a request dripped a byte at a time hold a connection for days. A request body (a POST sent to
port 80) is read and dropped, as nginx's `return` does, up to MAX_DISCARDED_BODY.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

from apiclub.names import parse_host
from apiclub.observe import emit
from apiclub.ops.jsonlog import ACCESS_FIELD
from apiclub.server.config import (
    KEEP_ALIVE_TIMEOUT,
    MAX_REQUEST_HEAD,
    MAX_REQUESTS_PER_CONNECTION,
    READ_TIMEOUT,
)
from apiclub.server.limits import ConnectionCap, RequestDeadline
from apiclub.server.redirect import Answer, RedirectApp, percent_escape
from apiclub.server.sockets import BACKLOG
from apiclub.units import KIB

logger = logging.getLogger("apiclub.redirect")
access_logger = logging.getLogger("apiclub.access")

DEFAULT_DEADLINE = RequestDeadline(timeout=READ_TIMEOUT, min_rate=1024, max_time=4 * READ_TIMEOUT)
"""The whole-request deadline when `serve_redirects` is given none (Settings' defaults)."""
MAX_DISCARDED_BODY = 1024 * KIB
"""A request body (a POST sent to port 80) is dropped; past this the connection is closed."""
FEED_SLICE = 4 * KIB
"""Bytes handed to the parser at once. httptools joins a header field's pieces by copying, so
a field fed whole costs time quadratic in its size; in slices, the limits below are checked
between them and a field is cut within a slice of MAX_REQUEST_HEAD."""


class RedirectProtocol(asyncio.Protocol):
    """One HTTP/1.x connection to the redirect port."""

    def __init__(
        self,
        app: RedirectApp,
        connections: set[RedirectProtocol],
        deadline: RequestDeadline = DEFAULT_DEADLINE,
        cap: ConnectionCap | None = None,
    ) -> None:
        self.app = app
        self.clock = deadline.clock(cap, self._cut)
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown peer"
        self.closing = False
        self.stopping = False
        self.answered = 0
        self.in_request = False
        self.reading_head = True
        self.last_read = 0.0
        self.head_bytes = 0
        self.body_bytes = 0
        self.url = b""
        self.head_size = 0
        self.host: bytes | None = None
        self.hosts_seen = 0
        self.user_agent = ""
        self.framing_bytes = 0
        self.messages = 0
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's does not subclass asyncio.Transport, so no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = f"{peer[0]}:{peer[1]}"
        self.last_read = self.loop.time()
        self.timer = self.loop.call_at(self.last_read + READ_TIMEOUT, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.clock.stop()
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_read = self.loop.time()
        for start in range(0, len(data), FEED_SLICE):
            if not self._feed(data[start : start + FEED_SLICE]):
                return

    def _feed(self, data: bytes) -> bool:
        """Parse one slice of what was read; False once the connection is being closed."""
        if self.closing:
            return False
        if self.reading_head:
            self.head_bytes += len(data)
        self._count(len(data))
        # After the head, what is not body is chunk framing or trailers (RFC 9112 7.1.2).
        after_head = self.in_request and not self.reading_head
        message, body_before = self.messages, self.body_bytes
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade or CONNECT request: it was answered at its head; nothing more to read.
            self._close()
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP/1.1 request: {exc}")
            return False
        if after_head and self.in_request and message == self.messages:
            self.framing_bytes += len(data) - (self.body_bytes - body_before)
        # httptools buffers an unfinished header itself: bound what a client may make it hold.
        if self.reading_head and self.head_bytes > MAX_REQUEST_HEAD:
            self._refuse(431, f"request line and headers exceed {MAX_REQUEST_HEAD} bytes")
        elif self.in_request and self._over_head_limit():
            self._refuse(431, self._trailers_too_large)
        return not self.closing

    _trailers_too_large = (
        f"request line, headers, chunk framing and trailers exceed {MAX_REQUEST_HEAD} bytes"
    )

    def _over_head_limit(self) -> bool:
        return self.head_size + self.framing_bytes > MAX_REQUEST_HEAD

    def pause_writing(self) -> None:
        # A client that pipelines requests but reads no answers: stop reading until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if not self.clock.running:  # a pipelined request, begun in the data just read
            self._count(0)
        self.in_request = True
        self.url = b""
        self.head_size = 0
        self.host = None
        self.hosts_seen = 0
        self.body_bytes = 0
        self.user_agent = ""
        self.framing_bytes = 0
        self.messages += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.reading_head:
            return  # a trailer field: counted in `framing_bytes`, never used (nor its Host)
        self.head_size += len(name) + len(value) + 4
        if name.lower() == b"host":
            self.hosts_seen += 1
            self.host = value
        elif name.lower() == b"user-agent":
            self.user_agent = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.head_bytes = 0
        if self.closing:
            return
        if self.head_size > MAX_REQUEST_HEAD:
            self._refuse(431, f"request line and headers exceed {MAX_REQUEST_HEAD} bytes")
        elif self.hosts_seen > 1:
            # RFC 9112 3.2: a request with more than one Host field is answered 400.
            self._refuse(400, "the request has more than one Host header; send exactly one")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_DISCARDED_BODY and not self.closing:
            self._refuse(
                413, f"request body over {MAX_DISCARDED_BODY} bytes: port 80 only redirects"
            )

    def on_message_complete(self) -> None:
        # Answered once the body is read and dropped, so a malformed body gets its 400.
        self.in_request = False
        self.clock.stop()
        self.reading_head = True
        if self.closing:
            return
        self.answered += 1
        last = (
            self.stopping
            or not self.parser.should_keep_alive()
            or self.answered >= MAX_REQUESTS_PER_CONNECTION
        )
        self._answer(close=last)
        if last:
            self._close()

    # our own

    def _answer(self, *, close: bool) -> None:
        began = time.perf_counter()
        method = self.parser.get_method().decode("ascii")
        raw_path, _, query = self.url.partition(b"?")
        try:
            host = parse_host(self.host.decode("ascii")) if self.host is not None else None
        except UnicodeDecodeError:
            host = None
        path = unquote(raw_path.decode("latin-1"))
        answer = self.app.answer(method, path, raw_path, query, host, self.peer)
        self._write(answer, head_only=method == "HEAD", close=close)
        # Redirects are logged at DEBUG: a line per 301 halved this listener's rate
        # (docs/performance.md), and sites often turn port 80's log off (nginx `access_log
        # off`). Refusals and challenge answers stay at INFO.
        level = logging.DEBUG if answer.status in (301, 308) else logging.INFO
        if access_logger.isEnabledFor(level):
            access_logger.log(
                level,
                '%s "%s %s %s" %d %d %.6fs',
                self.peer,
                method,
                percent_escape(raw_path),  # as sent: a decoded %0d%0a would forge a line
                self.parser.get_http_version(),
                answer.status,
                len(answer.body),
                time.perf_counter() - began,
                extra={ACCESS_FIELD: self._access_fields(method, raw_path, query, answer, began)},
            )

    def _access_fields(
        self, method: str, raw_path: bytes, query: bytes, answer: Answer, began: float
    ) -> dict[str, object]:
        """The fields of `--log-format json` (`ops.jsonlog`), as the API's access log has them."""
        ip, _, port = self.peer.rpartition(":")
        uri = percent_escape(raw_path) + ("?" + percent_escape(query) if query else "")
        return {
            "remote_ip": ip,
            "remote_port": int(port) if port.isdigit() else 0,
            "proto": f"HTTP/{self.parser.get_http_version()}",
            "method": method,
            "host": (self.host or b"").decode("latin-1"),
            "uri": uri,
            "status": answer.status,
            "size": len(answer.body),
            "duration": round(time.perf_counter() - began, 6),
            "user_agent": self.user_agent,
        }

    def _write(self, answer: Answer, *, head_only: bool = False, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        phrase = HTTPStatus(answer.status).phrase.encode("ascii")
        lines = [b"HTTP/1.1 %d %s" % (answer.status, phrase)]
        lines += [name + b": " + value for name, value in answer.headers]
        lines.append(b"content-length: %d" % len(answer.body))
        lines.append(b"date: " + _http_date())
        if close:
            lines.append(b"connection: close")
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        self.transport.write(head if head_only else head + answer.body)

    def _refuse(self, status: int, detail: str) -> None:
        logger.info("refused a request from %s with %d: %s", self.peer, status, detail)
        emit("redirect.answer", kind="refused")
        body = json.dumps({"status_code": status, "detail": detail}).encode()
        self._write(Answer(status, [(b"content-type", b"application/json")], body), close=True)
        self._close()

    def _cut(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _count(self, size: int) -> None:
        """Count bytes of a request; at its first, wake up by its deadline if set for later."""
        started = self.clock.running
        self.clock.received(size, self.loop.time())
        deadline = self.clock.deadline()
        if started or deadline is None:
            return  # the deadline only moves later as bytes arrive
        if self.timer is not None and self.timer.when() > deadline:
            self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        """Close a connection idle past its timeout, or whose head is not complete in time."""
        timeout = READ_TIMEOUT if self.in_request else KEEP_ALIVE_TIMEOUT
        deadline = self.last_read + timeout
        if (request_deadline := self.clock.deadline()) is not None:
            deadline = min(deadline, request_deadline)
        if self.loop.time() >= deadline:
            self._close()
        elif not self.closing:
            self.timer = self.loop.call_at(deadline, self._check_idle)

    def shut_down(self) -> None:
        """The server stops: close now if idle, else after the request being read."""
        self.stopping = True
        if not self.in_request:
            self._close()


def _http_date() -> bytes:
    """The Date header (RFC 9110 6.6.1)."""
    return _format_date(int(time.time()))


@functools.lru_cache(maxsize=1)
def _format_date(second: int) -> bytes:
    """Formatted once per second, not once per answer."""
    return formatdate(second, usegmt=True).encode("ascii")


async def serve_redirects(
    app: RedirectApp,
    sock: socket.socket,
    stop: asyncio.Event,
    grace_period: float,
    cap: ConnectionCap | None = None,
    deadline: RequestDeadline = DEFAULT_DEADLINE,
) -> None:
    """Answer port-80 requests on the bound, listening `sock` until `stop` is set.

    `cap`: the process's connection cap (shared with the API listener); none without it.
    `deadline`: how long a request may take to arrive.

    On stop: no new connections, idle ones closed, one being read gets its answer, and
    whatever remains after `grace_period` seconds is cut.
    """
    loop = asyncio.get_running_loop()
    connections: set[RedirectProtocol] = set()
    listener = sock if cap is None else cap.listener(sock)
    server = await loop.create_server(
        lambda: RedirectProtocol(app, connections, deadline, cap), sock=listener, backlog=BACKLOG
    )
    try:
        await stop.wait()
    finally:
        server.close()
        for connection in list(connections):
            connection.shut_down()
        cut_at = loop.time() + grace_period
        while connections and loop.time() < cut_at:
            await asyncio.sleep(0.05)
        for connection in list(connections):
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()
