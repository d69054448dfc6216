"""Wire the admin listener (`apiclub.ops.admin`) to `apiclub serve`: what /metrics exposes
and what /readyz checks.

The `serve` parent binds it and serves it from a thread, for one worker or many and across
reloads (the workers come and go; the listener and its counts stay): /metrics sums the
workers' samples from prometheus-client's multiprocess directory; /readyz is 200 while every
worker of the current generation serves and the database answers, and 503 from the stop
signal on (the signal handler sets the flag this reads, so no request waits on the drain).
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from apiclub.errors import ConfigError
from apiclub.ops.admin import AdminApp, AdminThread, Readiness
from apiclub.ops.certificates import CertificateCollector
from apiclub.ops.multiproc import (
    forget_worker,
    multiprocess_registry,
    prepare_multiprocess,
    remove_multiprocess,
)
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode

if TYPE_CHECKING:
    from apiclub.server.generations import Generations

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


class ParentAdmin:
    """The admin listener of the `serve` parent: a thread, the workers' summed samples.

    Make it before the workers start (it switches prometheus-client to multiprocess values
    and names the directory in the environment they inherit), then `run` the generations.
    """

    def __init__(self, settings: Settings) -> None:
        token = read_token(settings)
        self.socket = bind_admin_socket(settings)
        self.directory = prepare_multiprocess()
        registry = multiprocess_registry(self.directory)
        _add_certificates(registry, settings)
        self.registry = registry
        """What /metrics exposes: more collectors may be registered (replication's)."""
        self.database: Path | None = (
            settings.database_path if settings.database_url is None else None
        )
        self.generations: Generations | None = None
        readiness: Readiness = self.readiness
        self.thread = AdminThread(
            AdminApp(registry, readiness, metrics_in_thread=True, token=token),
            self.socket,
        )

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def banner(self) -> str:
        """The start banner's line for the admin listener."""
        host = self.socket.getsockname()[0]
        host = f"[{host}]" if ":" in host else host
        return f"  metrics http://{host}:{self.port}/metrics, /livez, /readyz\n"

    def worker_exited(self, pid: int) -> None:
        forget_worker(pid, self.directory)

    async def readiness(self) -> str | None:
        generations = self.generations
        if generations is None or generations.stopping:
            return "stopping: in-flight requests are finishing"
        workers = list(generations.workers)
        if not generations.announced or not workers or not all(w.is_ready for w in workers):
            return "starting: not every worker serves yet"
        if self.database is not None:
            try:
                await asyncio.to_thread(_sqlite_answers, self.database)
            except sqlite3.Error as exc:
                return f"the database does not answer: {exc}"
        return None

    def run(self, generations: Generations) -> int:
        """Run the generations with the admin listener beside them; their exit status."""
        self.generations = generations
        generations.on_worker_exit = self.worker_exited
        self.thread.start()
        try:
            return generations.run()
        finally:
            self.thread.stop()

    def close(self) -> None:
        """Close the socket and remove the sample directory (again: harmless)."""
        self.socket.close()
        remove_multiprocess(self.directory)


def _sqlite_answers(path: Path) -> None:
    """Raise sqlite3.Error unless the file opens read-only and holds applied migrations."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=DB_CHECK_TIMEOUT)
    try:
        connection.execute("SELECT count(*) FROM migration").fetchone()
    finally:
        connection.close()
