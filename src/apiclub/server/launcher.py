"""Start and stop the two listeners of one apiclub process.

startup:  certificates ready -> sockets bound -> API lifespan (migrations) -> redirect
          listener -> renewal task.
SIGTERM:  stop accepting -> in-flight requests finish (bounded by the grace period) -> exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from hypercorn.asyncio import serve as hypercorn_serve

from apiclub.api import create_app
from apiclub.compat import patches
from apiclub.observe import subscribe
from apiclub.server.asgi import ASGIApp
from apiclub.server.config import ListenerConfig, create_listener_config
from apiclub.server.connections import OPEN_CONNECTIONS
from apiclub.server.lifespan import LifespanWatch
from apiclub.server.limits import RequestDeadline, connection_cap
from apiclub.server.redirect import RedirectApp
from apiclub.server.redirect_server import serve_redirects
from apiclub.server.sockets import bind_listeners
from apiclub.server.stack import api_stack
from apiclub.settings import Settings, TlsMode
from apiclub.tls import CertManager

if TYPE_CHECKING:
    from apiclub.ops.metrics import Metrics

logger = logging.getLogger("apiclub.server")

STOP_MARGIN = 5.0
"""Seconds past the grace period before remaining connections are cut (TLS close can hang)."""
ABORT_WAIT = 2.0
"""Seconds the listeners get to finish after each fallback (connections cut, then cancelled)."""

HANDOVER_WAIT = 0.05
"""Seconds between the end of accepting and the stop: TLS handshakes in progress finish."""

ShutdownTrigger = Callable[[], Awaitable[object]]


class Server:
    """One apiclub process: the API listener, the redirect listener and certificate upkeep.

    `prepare()` does everything that can fail fast (certificates, sockets) before `serve()`,
    so ports are known (port 0 picks free ones) and errors surface before any listener runs.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        app: ASGIApp | None = None,
        api_socket: socket.socket | None = None,
        redirect_socket: socket.socket | None = None,
        cert_manager: CertManager | None = None,
    ) -> None:
        """Args:
        settings: what to serve and how.
        app: the API app; `create_app(settings)` by default.
        api_socket, redirect_socket: already bound sockets to serve on instead of binding
            the configured ports (tests bind port 0 for both; the HTTP port 0 means "off").
        cert_manager: certificates to serve; `CertManager(settings)` by default (tests pass
            one with short renewal intervals).
        """
        self.settings = settings
        self._app = app
        self.cert_manager: CertManager | None = cert_manager
        self._api_socket = api_socket
        self._redirect_socket = redirect_socket
        self._watch: LifespanWatch | None = None
        self._api_port: int | None = None
        self._redirect_port: int | None = None
        self._configs: list[ListenerConfig] = []
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        """Set at the first stop signal, before anything closes (readiness goes false)."""
        self.hand_over = False
        """Set before the stop when the listening socket outlives this process (a reload):
        connections accepted a moment ago reach their first request instead of being cut."""
        self.metrics: Metrics | None = None
        """This worker's metrics (written to the parent's multiprocess directory), made by
        `serve()` when the admin listener is on."""
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def tls_enabled(self) -> bool:
        return self.settings.tls is not TlsMode.OFF

    @property
    def api_port(self) -> int:
        """The port the API is served on (HTTPS, or HTTP when TLS is off)."""
        assert self._api_port is not None, "call prepare() first"  # noqa: S101
        return self._api_port

    @property
    def redirect_port(self) -> int | None:
        """The port of the redirect listener, or None when it is off."""
        return self._redirect_port

    def prepare(self) -> None:
        """Install the compat patches, make certificates ready and bind the sockets.

        Raises:
            CompatError, CertificateError, StorageError, ListenError: with a message naming
                the fix.
        """
        patches.install(OPEN_CONNECTIONS)
        self._prepare_sockets()
        assert self._api_socket is not None  # noqa: S101
        self._api_port = int(self._api_socket.getsockname()[1])
        if self._redirect_socket is not None:
            self._redirect_port = int(self._redirect_socket.getsockname()[1])

    def _prepare_sockets(self) -> None:
        if self.tls_enabled or self.settings.manage_certs:
            if self.cert_manager is None:
                self.cert_manager = CertManager(self.settings)
            self.cert_manager.prepare()
        if self._redirect_socket is None:
            self._api_socket, self._redirect_socket = bind_listeners(
                self.settings, api=self._api_socket
            )

    def close(self) -> None:
        """Release the sockets if `serve()` never ran."""
        for sock in (self._api_socket, self._redirect_socket):
            if sock is not None:
                sock.close()

    async def serve(self, shutdown_trigger: ShutdownTrigger) -> None:
        """Serve until `shutdown_trigger` returns, then stop gracefully.

        Raises:
            ApiclubError: the API failed to start (a failed migration, an unusable database).
        """
        assert self._api_socket is not None, "call prepare() first"  # noqa: S101
        stop = asyncio.Event()
        # Litestar's own ASGI types are narrower TypedDicts; at run time it is an ASGI 3 app.
        app = self._app if self._app is not None else cast(ASGIApp, create_app(self.settings))
        context: ssl.SSLContext | None = None
        if self.cert_manager is not None and self.tls_enabled:
            context = self.cert_manager.server_context()
        self._watch = LifespanWatch(
            api_stack(app, self.settings, self.cert_manager, self._metrics())
        )
        tasks = [asyncio.create_task(self._serve_api(context, stop), name="api")]
        try:
            await self._wait_started(tasks[0])
            tasks += self._start_companions(stop)
            self.ready.set()
            trigger = asyncio.create_task(_await(shutdown_trigger), name="shutdown-trigger")
            await asyncio.wait([trigger, *tasks], return_when=asyncio.FIRST_COMPLETED)
            trigger.cancel()
        finally:
            self.stopping.set()
            if self.hand_over:
                await self._hand_over_pending_connections()
            stop.set()
            await _finish(tasks, self.settings.grace_period + STOP_MARGIN, self._configs)
            if self._unsubscribe is not None:
                self._unsubscribe()
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    async def _hand_over_pending_connections(self) -> None:
        """Stop accepting, then let connections accepted a moment ago reach their first request.

        The listening socket outlives this process at a reload, and under systemd's socket
        activation: connections still in the kernel's queue go to the next process. Ones
        asyncio accepted here in a batch were still in their TLS handshake, and Hypercorn's
        stop only waits for connections past it; so accepting stops first (the reader comes
        off the loop; Hypercorn's `Server.close()` removes it again, harmlessly).
        """
        # The socket Hypercorn accepts on: with the connection cap, a duplicate descriptor.
        served = self._configs[0].served_socket if self._configs else self._api_socket
        if served is None or served.fileno() < 0:
            return
        asyncio.get_running_loop().remove_reader(served.fileno())
        await asyncio.sleep(HANDOVER_WAIT)

    def _metrics(self) -> Metrics | None:
        """Make this process's metrics when the admin listener is on, and let them observe."""
        if self.metrics is None and self.settings.metrics_port:
            from apiclub.ops.metrics import Metrics  # prometheus-client: only when asked

            self.metrics = Metrics()
        if self.metrics is not None and self._unsubscribe is None:
            self._unsubscribe = subscribe(self.metrics.handle)
        return self.metrics

    async def _serve_api(self, context: ssl.SSLContext | None, stop: asyncio.Event) -> None:
        assert self._api_socket is not None and self._watch is not None  # noqa: S101
        config = create_listener_config(self.settings, self._api_socket, context)
        self._configs.append(config)
        await _serve_quietly(self._watch, config, stop)

    async def _wait_started(self, api_task: asyncio.Task[None]) -> None:
        assert self._watch is not None  # noqa: S101
        started = asyncio.create_task(self._watch.started.wait())
        await asyncio.wait([started, api_task], return_when=asyncio.FIRST_COMPLETED)
        if not self._watch.started.is_set():
            started.cancel()
            with contextlib.suppress(Exception):
                await api_task
            raise self._watch.startup_error()

    def _start_companions(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        tasks = []
        if self._redirect_socket is not None:
            public_port = self.settings.public_https_port or self.api_port
            # The port-80 listener answers ACME HTTP-01 challenges from the manager's store.
            challenges = self.cert_manager.challenges if self.cert_manager else None
            redirect = RedirectApp(self.settings.domains, public_port, challenges)
            # A small httptools server, not Hypercorn: a 301 needs no ASGI stack (see
            # docs/performance.md); it cuts its own connections after the grace period.
            grace = self.settings.grace_period
            cap, deadline = (
                connection_cap(self.settings),
                RequestDeadline.from_settings(self.settings),
            )
            serving = serve_redirects(redirect, self._redirect_socket, stop, grace, cap, deadline)
            tasks.append(asyncio.create_task(serving, name="redirect"))
        if self.cert_manager is not None:
            tasks.append(asyncio.create_task(self.cert_manager.maintain(stop), name="renewal"))
        return tasks


async def _serve_quietly(app: ASGIApp, config: object, stop: asyncio.Event) -> None:
    """Run Hypercorn; an `ssl.SSLError` while closing must not turn a clean stop into a failure."""
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    except ssl.SSLError as exc:
        if not stop.is_set():
            raise
        logger.debug("TLS error while closing connections: %s", exc)


async def _await(trigger: ShutdownTrigger) -> None:
    await trigger()


async def _finish(
    tasks: list[asyncio.Task[None]], timeout: float, configs: list[ListenerConfig]
) -> None:
    """Wait for the listeners to drain, then cut whatever still hangs (idle TLS closes).

    Connections are cut first, so that Hypercorn's own stop completes (the app's lifespan
    shutdown closes the database); a connection the cut did not end is cancelled. A listener
    is cancelled only if even that does not help: cancelling it while Hypercorn waits for its
    connections makes Hypercorn's stop crash (`OpenConnections.cancel`).
    """
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if not pending:
        return
    if cut := sum(OPEN_CONNECTIONS.abort(config) for config in configs):
        logger.warning("%d connection(s) still open %.0f s after the stop; cut", cut, timeout)
    _, pending = await asyncio.wait(pending, timeout=ABORT_WAIT)
    if pending and (cancelled := sum(OPEN_CONNECTIONS.cancel(config) for config in configs)):
        logger.warning("%d connection(s) still open after the cut; cancelled", cancelled)
        _, pending = await asyncio.wait(pending, timeout=ABORT_WAIT)
    for task in pending:
        logger.warning(
            "%s listener did not stop within %.0f s; closing it", task.get_name(), timeout
        )
        task.cancel()
    if pending:
        await asyncio.wait(pending)
