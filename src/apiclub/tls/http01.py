"""A bare HTTP-01 responder for `apiclub certs ...` when no server holds port 80.

`apiclub serve` answers challenges from its redirect app; a one-off CLI order needs
something on port 80 only for a few seconds, so the standard library's threaded server does.
It answers `/.well-known/acme-challenge/<token>` from the shared `ChallengeStore` and 404s
everything else.

Anyone may connect to port 80 while it runs: each connection gets one request, which must
arrive within `REQUEST_DEADLINE` (a socket timeout alone restarts with every byte), and at most
`MAX_THREADS` connections are served at once; past that a new one is closed at once.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from apiclub.tls.challenges import ChallengeLookup, token_from_path
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.tls.acme")

REQUEST_DEADLINE = 10 * SECONDS
"""A request (head included) must arrive within this of the connection's start."""
MAX_THREADS = 32
"""Connections served at once; the CA validates from a handful of addresses."""


@contextlib.contextmanager
def serve_challenges(sock: socket.socket, answers: ChallengeLookup) -> Iterator[None]:
    """Answer HTTP-01 requests on the bound, listening `sock` until the block ends.

    The socket is closed afterwards.
    """
    sock.setblocking(True)
    server = _Server(sock, answers)
    thread = threading.Thread(target=server.serve_forever, name="http-01", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, sock: socket.socket, answers: ChallengeLookup) -> None:
        # Serve on our pre-bound socket: skip the base class's own bind and listen.
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.answers = answers
        self.slots = threading.BoundedSemaphore(MAX_THREADS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            logger.debug("http-01 responder: %d connections already, closing one", MAX_THREADS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts its thread
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _DeadlineReader:
    """The request's read side, each read bounded by what is left of the deadline."""

    def __init__(self, rfile: Any, connection: socket.socket, deadline: float) -> None:
        self._rfile, self._connection, self._deadline = rfile, connection, deadline

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._connection.settimeout(left)

    def readline(self, limit: int = -1) -> bytes:
        self._arm()
        line: bytes = self._rfile.readline(limit)
        return line

    def read(self, size: int = -1) -> bytes:
        self._arm()
        data: bytes = self._rfile.read(size)
        return data

    def close(self) -> None:
        self._rfile.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_DEADLINE  # until setup() arms the deadline itself

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + REQUEST_DEADLINE
        self.rfile = _DeadlineReader(self.rfile, self.connection, deadline)  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()  # one request per connection
        except TimeoutError:
            self.close_connection = True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        token = token_from_path(self.path.split("?", 1)[0])
        host = _host(self.headers.get("Host"))
        answer = self.server.answers.lookup(token, host) if token is not None else None
        body = answer.encode("ascii") if answer is not None else b"unknown ACME challenge token\n"
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http-01 responder: %s", format % args)


def _host(header: str | None) -> str | None:
    """The Host header's name: lower case, without its port or a trailing dot."""
    if not header:
        return None
    host = header.strip().lower()
    if host.startswith("["):  # an IPv6 literal, [::1]:80
        return host[1:].partition("]")[0] or None
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".") or None
