"""The admin listener: `/metrics`, `/livez` and `/readyz` in plain HTTP, on 127.0.0.1 by default.

A listener of its own, never the public ones: metrics name the served domains and readiness
must answer while the API drains. One request per connection (`Connection: close`), a head of
at most MAX_HEAD bytes within READ_TIMEOUT, GET and HEAD only: Prometheus, curl and
orchestrators' probes need no more, and nothing here parses a body. It runs in the API's
event loop (one process) or in a thread of the parent (`--workers N`, `AdminThread`).

- `/livez`: 200 while the process runs, until its exit.
- `/readyz`: 200 once the API serves (migrations applied, certificates loaded) and the
  database answers; 503 with the reason from the first stop signal on, so a proxy or
  orchestrator stops sending new requests while the in-flight ones finish.
- `/metrics`: the Prometheus text exposition format.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apiclub.units import KIB, SECONDS

logger = logging.getLogger("apiclub.ops")

MAX_HEAD = 8 * KIB
READ_TIMEOUT = 5 * SECONDS
"""Seconds a client gets to send its request head."""

Readiness = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else why not (the body of the 503)."""


class AdminApp:
    """The answers of the admin listener."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        metrics_in_thread: bool,
        token: bytes | None = None,
    ) -> None:
        """Args:
        registry: what /metrics exposes.
        readiness: the /readyz check.
        metrics_in_thread: render /metrics in a thread (the multiprocess collector reads
            files; the API's loop must not wait on them).
        token: the bearer token /metrics asks for, if any (/livez and /readyz stay open:
            probes carry no token and learn only "ready or not").
        """
        self.token = token
        self.registry = registry
        self.readiness = readiness
        self.metrics_in_thread = metrics_in_thread
        self.ready = ReadyCollector()
        registry.register(self.ready)

    async def answer(
        self, method: str, path: str, authorization: bytes = b""
    ) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for one request."""
        if method not in ("GET", "HEAD"):
            return _json(405, {"detail": f"{method} is not allowed here: use GET"})
        if path == "/livez":
            return _json(200, {"status": "alive"})
        if path == "/readyz":
            reason = await self._check()
            if reason is None:
                return _json(200, {"status": "ready"})
            return _json(503, {"status": "not ready", "detail": reason})
        if path == "/metrics":
            if self.token is not None and not hmac.compare_digest(
                authorization, b"Bearer " + self.token
            ):
                return _json(401, {"detail": "/metrics needs Authorization: Bearer <token>"})
            await self._check()  # apiclub_ready: what /readyz would answer now
            if self.metrics_in_thread:
                body = await asyncio.to_thread(generate_latest, self.registry)
            else:
                body = generate_latest(self.registry)
            return 200, CONTENT_TYPE_LATEST.encode(), body
        return _json(404, {"detail": f"no {path!r} here: /metrics, /livez or /readyz"})

    async def _check(self) -> str | None:
        try:
            reason = await self.readiness()
        except Exception as exc:  # a check that breaks means "not ready", with why
            reason = f"readiness check failed: {exc}"
        self.ready.value = 1.0 if reason is None else 0.0
        return reason


class ReadyCollector(Collector):
    """`apiclub_ready`: 1 when /readyz would answer 200 (the readiness-flapping alert)."""

    def __init__(self) -> None:
        self.value = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "apiclub_ready", "1 when /readyz answers 200, 0 when 503.", value=self.value
        )


def _json(status: int, body: object) -> tuple[int, bytes, bytes]:
    return status, b"application/json", json.dumps(body).encode()


async def serve_admin(app: AdminApp, sock: socket.socket, stop: asyncio.Event) -> None:
    """Answer on `sock` until `stop` is set; then close the socket."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, path, authorization = _parse_head(head)
            status, content_type, body = await app.answer(method, path, authorization)
            if method == "HEAD":
                length, body = len(body), b""
            else:
                length = len(body)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        except ValueError:
            status, content_type, body = _json(400, {"detail": "malformed request line"})
            length = len(body)
        except ConnectionError:
            writer.close()
            return
        phrase = HTTPStatus(status).phrase.encode()
        writer.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"cache-control: no-store\r\nconnection: close\r\n\r\n%s"
            % (status, phrase, content_type, length, body)
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, sock=sock, limit=MAX_HEAD)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)


def _parse_head(head: bytes) -> tuple[str, str, bytes]:
    """Method, path and the Authorization header's value; ValueError when malformed."""
    first, *fields = head.rstrip(b"\r\n").split(b"\r\n")
    line = first.decode("ascii")
    method, target, version = line.split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(line)
    authorization = b""
    for field in fields:
        name, _, value = field.partition(b":")
        if name.strip().lower() == b"authorization":
            authorization = value.strip()
    return method, target.split("?", 1)[0], authorization


class AdminThread:
    """The admin listener in a thread with its own event loop (the `--workers` parent, whose
    main thread waits on worker pipes, not on an event loop)."""

    def __init__(self, app: AdminApp, sock: socket.socket) -> None:
        self._app = app
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="apiclub-admin", daemon=True)

    def start(self) -> None:
        """Start serving; returns once the thread's loop runs."""
        self._thread.start()
        self._started.wait(5.0)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5.0)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            await serve_admin(self._app, self._sock, self._stop)

        try:
            asyncio.run(main())
        except Exception:
            logger.exception("the admin listener failed")
