"""A deliberately weak TLS server: our context with TLS 1.0 and CBC/SHA-1 suites let back in.

The failure twin of the sslyze scan: it proves the scan and its assertions notice the very
regressions they guard against.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator

from apiclub.tls.certified import CertifiedKey
from apiclub.tls.context import create_server_context

HANDSHAKE_TIMEOUT = 10
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def weakened_context(certified: CertifiedKey) -> ssl.SSLContext:
    """apiclub's server context, then TLS 1.0+ and legacy suites (security level 0 for SHA-1)."""
    context = create_server_context(certified)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ECDHE+AESGCM:ECDHE+AES:AES128-SHA:@SECLEVEL=0")
    return context


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        context: ssl.SSLContext = self.server.context  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(HANDSHAKE_TIMEOUT)
        # Scanners abort handshakes on purpose: every error here is expected.
        with contextlib.suppress(OSError), context.wrap_socket(sock, server_side=True) as tls:
            if tls.recv(4096):
                tls.sendall(ANSWER)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextlib.contextmanager
def weak_tls_server(certified: CertifiedKey) -> Iterator[int]:
    """Serve the weakened context on a free port of 127.0.0.1; yield the port."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.context = weakened_context(certified)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
