"""A bare HTTP-01 responder for `apiclub certs ...` when no server holds port 80.

`apiclub serve` answers challenges from its redirect app; a one-off CLI order needs
something on port 80 only for a few seconds, so the standard library's threaded server does.
It answers `/.well-known/acme-challenge/<token>` from the shared `ChallengeStore` and 404s
everything else.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

from apiclub.tls.challenges import ChallengeLookup, token_from_path

logger = logging.getLogger("apiclub.tls.acme")


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


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        token = token_from_path(self.path.split("?", 1)[0])
        answer = self.server.answers.lookup(token) if token is not None else None
        body = answer.encode("ascii") if answer is not None else b"unknown ACME challenge token\n"
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http-01 responder: %s", format % args)
