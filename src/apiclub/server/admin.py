"""Wire the admin listener (`apiclub.ops.admin`) to a running server: what /metrics exposes
and what /readyz checks, for one process and for the `--workers N` parent.

One process: the admin listener runs in the API's event loop; /readyz is 200 once the API
serves and the database answers a `SELECT 1`, and 503 from the stop signal on (the signal
handler sets the event this reads, so no request waits on the drain to see it).
`--workers N`: the parent binds it, serves it from a thread, sums the workers' samples from
the multiprocess directory, and is ready while every worker is and no stop was asked.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from apiclub.errors import ConfigError
from apiclub.ops.admin import AdminApp, AdminThread, Readiness, serve_admin
from apiclub.ops.certificates import CertificateCollector
from apiclub.ops.metrics import Metrics
from apiclub.ops.multiproc import (
    forget_worker,
    multiprocess_registry,
    prepare_multiprocess,
    remove_multiprocess,
)
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode

if TYPE_CHECKING:
    from apiclub.server.launcher import Server
    from apiclub.server.workers import Supervisor

DB_CHECK_TIMEOUT = 1.0
"""Seconds the database gets to answer a readiness check."""
OPTION = "--metrics-port/APICLUB_METRICS_PORT"


def bind_admin_socket(settings: Settings) -> socket.socket:
    """Bind the admin listener's socket (ListenError names the option when it is taken)."""
    return bind_socket(settings.metrics_host, settings.metrics_port, option=OPTION)


def read_token(settings: Settings) -> bytes | None:
    """The bearer token of APICLUB_METRICS_TOKEN_FILE, if set.

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    path = settings.metrics_token_file
    if path is None:
        return None
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"APICLUB_METRICS_TOKEN_FILE={str(path)!r}: {exc.strerror}") from None
    if not token or any(b < 0x21 or b > 0x7E for b in token):
        raise ConfigError(
            f"APICLUB_METRICS_TOKEN_FILE={str(path)!r} holds no usable token: write one line "
            "of printable characters, e.g. `openssl rand -hex 32 > FILE`"
        )
    return token


def _add_certificates(registry: CollectorRegistry, settings: Settings) -> None:
    if settings.tls is not TlsMode.OFF or settings.manage_certs:
        registry.register(CertificateCollector(settings.data_dir, settings.domains))


class ServerAdmin:
    """The admin listener of a one-process `Server`, in its event loop."""

    def __init__(self, server: Server, stop: asyncio.Event) -> None:
        self.server = server
        self.stop = stop
        token = read_token(server.settings)
        self.socket = bind_admin_socket(server.settings)
        if server.metrics is None:
            server.metrics = Metrics()
        _add_certificates(server.metrics.registry, server.settings)
        self.app = AdminApp(
            server.metrics.registry,
            self.readiness,
            metrics_in_thread=False,
            token=token,
        )

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    async def readiness(self) -> str | None:
        if self.stop.is_set():
            return "stopping: in-flight requests are finishing"
        if not self.server.ready.is_set():
            return "starting: migrations or certificates are not ready yet"
        from apiclub.db.tasks import ping

        try:
            await asyncio.wait_for(ping(), DB_CHECK_TIMEOUT)
        except Exception as exc:
            return f"the database does not answer: {exc!r}"
        return None

    async def serve(self, until: asyncio.Event) -> None:
        """Answer until `until` is set (after the API listeners have stopped)."""
        await serve_admin(self.app, self.socket, until)


class SupervisorAdmin:
    """The admin listener of the `--workers N` parent: a thread, the workers' summed samples."""

    def __init__(self, supervisor: Supervisor) -> None:
        settings = supervisor.settings
        self.supervisor = supervisor
        token = read_token(settings)
        self.socket = bind_admin_socket(settings)
        self.directory = prepare_multiprocess()
        registry = multiprocess_registry(self.directory)
        _add_certificates(registry, settings)
        self.database: Path | None = (
            settings.database_path if settings.database_url is None else None
        )
        readiness: Readiness = self.readiness
        self.thread = AdminThread(
            AdminApp(registry, readiness, metrics_in_thread=True, token=token),
            self.socket,
        )
        supervisor.on_worker_exit = self.worker_exited

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def worker_exited(self, pid: int) -> None:
        forget_worker(pid, self.directory)

    async def readiness(self) -> str | None:
        supervisor = self.supervisor
        if supervisor.stopping:
            return "stopping: in-flight requests are finishing"
        if not supervisor.announced or not all(w.is_ready for w in supervisor.workers):
            return "starting: not every worker serves yet"
        if self.database is not None:
            try:
                await asyncio.to_thread(_sqlite_answers, self.database)
            except sqlite3.Error as exc:
                return f"the database does not answer: {exc}"
        return None

    def run(self) -> int:
        """Run the supervisor with the admin listener beside it; its exit status."""
        self.thread.start()
        try:
            return self.supervisor.run()
        finally:
            self.thread.stop()
            self.socket.close()
            remove_multiprocess(self.directory)


def _sqlite_answers(path: Path) -> None:
    """Raise sqlite3.Error unless the file opens read-only and holds applied migrations."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DB_CHECK_TIMEOUT)
    try:
        connection.execute("SELECT count(*) FROM migration").fetchone()
    finally:
        connection.close()
