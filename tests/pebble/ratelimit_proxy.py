"""An HTTPS proxy in front of pebble that rate-limits one chosen request, as Let's Encrypt does.

Pebble never answers 429. This proxy forwards every request to it unchanged, Host included:
pebble builds its directory and Location URLs from the request's Host (`relativeEndpoint` in
its wfe.go) and checks each JWS `url` against it, so every URL the client sees leads back
through the proxy. One chosen request (the first newOrder, or the first finalize) is not
forwarded: it gets HTTP 429 with an RFC 8555 problem document (type `rateLimited`, 6.7), a
fresh nonce from pebble (6.5) and, if asked, `Retry-After` (6.6) in seconds or as an HTTP-date;
or, as a load balancer in front of a CA might, any status with a bare text body. Every request
is recorded with its arrival time, so a test can see when the client came back.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .pebble import Pebble

RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
PROBLEM_JSON = "application/problem+json"
# Hop-by-hop headers (RFC 9110 7.6.1), and those the proxy writes itself (http.server adds
# Date and Server to every answer).
NOT_FORWARDED = {
    *("connection", "keep-alive", "transfer-encoding"),
    *("content-length", "date", "server"),
}
UPSTREAM_TIMEOUT = 30


@dataclass(frozen=True)
class Fault:
    """Answer the first request to `target` ("newOrder" or "finalize") with `status`."""

    target: str
    retry_after: int | None
    """Seconds the client is asked to wait, or None to send no Retry-After at all."""
    http_date: bool = False
    """Send Retry-After as an HTTP-date (RFC 9110 5.6.7) instead of delay-seconds."""
    detail: str = "too many new orders from this account recently (the test proxy's limit)"
    status: int = 429
    problem: bool = True
    """Send a rateLimited problem document; False: a bare text answer, as a load balancer in
    front of the CA might send."""
    problem_type: str = RATE_LIMITED
    ari_retry_after: int | None = None
    """Add `Retry-After: N` to pebble's renewalInfo answers (pebble sends none)."""
    times: int = 1
    """How many requests to `target` get the fault ("none": no fault at all)."""
    after: int = 0
    """Let this many requests to `target` through first (0: fault the first)."""


@dataclass(frozen=True)
class Exchange:
    arrived: float
    """`time.time()` when the request head was read."""
    method: str
    path: str
    status: int
    injected: bool = False
    """This answer is the fault, not pebble's."""
    retry_at: float | None = None
    """For the fault with Retry-After: `time.time()` before which the client was asked not to
    come back."""


class RateLimitProxy:
    """The proxy's state: where pebble is, the fault, and what went through."""

    def __init__(self, pebble: Pebble, fault: Fault) -> None:
        self.pebble = pebble
        self.fault = fault
        upstream = urlsplit(pebble.directory)
        self.upstream = (str(upstream.hostname), int(upstream.port or 443))
        self.context = ssl.create_default_context(cafile=str(pebble.ca_bundle))
        self.exchanges: list[Exchange] = []
        self.directory = ""
        self._new_order_path = ""
        self._new_nonce_path = ""
        self._finalize_paths: set[str] = set()
        self._faulted = 0
        self._passed = 0
        self._lock = threading.Lock()

    def learn_directory(self) -> None:
        """Find pebble's newOrder and newNonce paths (they are its own choice)."""
        path = urlsplit(self.pebble.directory).path
        status, _, body = self.forward("GET", path, {"User-Agent": "test-proxy"}, b"")
        assert status == 200, body
        directory = json.loads(body)
        self._new_order_path = urlsplit(directory["newOrder"]).path
        self._new_nonce_path = urlsplit(directory["newNonce"]).path

    @property
    def faulted(self) -> Exchange:
        """The exchange answered with the fault."""
        return next(e for e in self.exchanges if e.injected)

    def after_fault(self) -> list[Exchange]:
        """The requests that arrived after the fault was answered."""
        faulted = self.faulted
        return [e for e in self.exchanges if e.arrived > faulted.arrived]

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPSConnection(
            *self.upstream, context=self.context, timeout=UPSTREAM_TIMEOUT
        )
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        if self._take_fault(handler.command, path):
            self._answer_fault(handler, arrived)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in NOT_FORWARDED}
        status, response_headers, data = self.forward(handler.command, path, headers, body)
        self._learn_finalize(data)
        self._record(Exchange(arrived, handler.command, path, status))
        handler.send_response(status)
        ari_retry_after = self.fault.ari_retry_after if "/renewalInfo/" in path else None
        for key, value in response_headers:
            if key.lower() in NOT_FORWARDED or (ari_retry_after and key.lower() == "retry-after"):
                continue
            handler.send_header(key, value)
        if ari_retry_after is not None:  # in place of pebble's own (6 hours)
            handler.send_header("Retry-After", str(ari_retry_after))
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _take_fault(self, method: str, path: str) -> bool:
        if method != "POST":
            return False
        with self._lock:
            if self._faulted >= self.fault.times:
                return False
            if self.fault.target == "newOrder":
                hit = path == self._new_order_path
            elif self.fault.target == "finalize":
                hit = path in self._finalize_paths
            else:  # "none": forward everything
                hit = False
            if hit and self._passed < self.fault.after:
                self._passed += 1
                return False
            self._faulted += hit
            return hit

    def _learn_finalize(self, data: bytes) -> None:
        """Orders name their finalize URL (RFC 8555 7.1.3): remember it to fault on it."""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            finalize = json.loads(data).get("finalize")
            if isinstance(finalize, str):
                with self._lock:
                    self._finalize_paths.add(urlsplit(finalize).path)

    def _answer_fault(self, handler: BaseHTTPRequestHandler, arrived: float) -> None:
        fault = self.fault
        handler.send_response(fault.status)
        if fault.problem:
            host = handler.headers.get("Host", "")
            _, nonce_headers, _ = self.forward(
                "HEAD", self._new_nonce_path, {"Host": host, "User-Agent": "test-proxy"}, b""
            )
            nonce = next(v for k, v in nonce_headers if k.lower() == "replay-nonce")
            problem = {"type": fault.problem_type, "detail": fault.detail, "status": fault.status}
            data = json.dumps(problem).encode()
            handler.send_header("Content-Type", PROBLEM_JSON)
            handler.send_header("Replay-Nonce", nonce)
        else:
            data = f"{fault.status} {HTTPStatus(fault.status).phrase}\n".encode()
            handler.send_header("Content-Type", "text/plain")
        handler.send_header("Cache-Control", "no-store")
        retry_at = None
        seconds = fault.retry_after
        if seconds is not None:
            if fault.http_date:
                # Whole seconds only: round up, so the client never waits less than asked.
                retry_at = float(math.ceil(time.time()) + seconds)
                handler.send_header("Retry-After", formatdate(retry_at, usegmt=True))
            else:
                retry_at = time.time() + seconds
                handler.send_header("Retry-After", str(seconds))
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        self._record(Exchange(arrived, "POST", handler.path, fault.status, True, retry_at))

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' session expects
    server: _Server

    def do_GET(self) -> None:
        self.server.proxy.handle(self)

    def do_HEAD(self) -> None:
        self.server.proxy.handle(self)

    def do_POST(self) -> None:
        self.server.proxy.handle(self)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the exchanges are recorded; stderr stays quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: RateLimitProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy


@contextlib.contextmanager
def ratelimit_proxy(pebble: Pebble, fault: Fault) -> Iterator[RateLimitProxy]:
    """Serve the proxy on a free port of 127.0.0.1 with pebble's own listener certificate."""
    proxy = RateLimitProxy(pebble, fault)
    proxy.learn_directory()
    server = _Server(proxy)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pebble.workdir / "cert.pem", pebble.workdir / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    proxy.directory = f"https://127.0.0.1:{port}{urlsplit(pebble.directory).path}"
    thread = threading.Thread(target=server.serve_forever, name="ratelimit-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
