"""A bare HTTP-01 responder for `apiclub certs ...` when no server holds port 80.

`apiclub serve` answers challenges from its redirect app; a one-off CLI order needs
something on port 80 only for a few seconds, so the standard library's threaded server does.
It answers `/.well-known/acme-challenge/<token>` from the shared `ChallengeStore` through the
one HTTP-01 responder (`challenge_answer`), exactly as the server's listeners do, and 404s
every other path.

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
from urllib.parse import unquote

from apiclub.names import parse_host
from apiclub.tls.challenge_answer import ChallengeAnswer, answer_challenge
from apiclub.tls.challenges import ChallengeLookup, token_from_path
from apiclub.units import KIB, SECONDS

logger = logging.getLogger("apiclub.tls.acme")

REQUEST_DEADLINE = 10 * SECONDS
"""A request (head included) must arrive within this of the connection's start."""
MAX_THREADS = 32
"""Connections served at once; the CA validates from a handful of addresses."""
MAX_DISCARDED_BODY = 64 * KIB
"""Bytes of a request body (a POST) read and dropped at most; a larger one is left unread."""
NOT_A_CHALLENGE = ChallengeAnswer(
    404, (("content-type", "text/plain"), ("cache-control", "no-store")), b"not found\n"
)
"""Any other path: this listener serves nothing else."""


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

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's thread; the slot is free again before the socket closes,
        # so a client that sees this connection end can connect at once.
        try:
            super().finish_request(request, client_address)
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

    def parse_request(self) -> bool:
        # The base class dispatches to `do_<METHOD>` and answers 501 to a method it has no
        # handler for; every method goes to `_answer`, so a POST gets the responder's 405.
        if not super().parse_request():
            return False
        setattr(self, f"do_{self.command}", self._answer)
        return True

    def _answer(self) -> None:
        self._drop_body()
        path = unquote(self.path.partition("?")[0])  # decoded as the server's listeners do
        header = self.headers.get("Host")
        host = parse_host(header) if header else None
        if token_from_path(path) is not None:
            peer = str(self.client_address[0])
            answer = answer_challenge(self.server.answers, self.command, host, path, peer)
        else:
            answer = NOT_A_CHALLENGE
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _drop_body(self) -> None:
        """Read a small request body before answering: closing a socket with unread bytes
        sends a reset, which can destroy the answer before the client reads it."""
        length = self.headers.get("Content-Length", "0")
        size = int(length) if length.isdigit() else 0
        if 0 < size <= MAX_DISCARDED_BODY:
            self.rfile.read(size)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http-01 responder: %s", format % args)
