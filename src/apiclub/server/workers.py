"""`apiclub serve --workers N`: N server processes sharing the listening sockets.

The parent binds the sockets and makes the certificates ready once (errors are one line before
any worker starts, and N workers never race to create the CA), then forks N workers. Each runs
a `Server` on the inherited sockets, and the kernel hands each new connection to whichever
worker accepts it first. Each worker has its own event loop, database connection and renewal
loop: migrations run under their file lock (applied once), ACME orders under the store's lock,
and challenge tokens are answered from the shared store by whichever worker gets the request.

Supervision, as gunicorn's arbiter and uvicorn's supervisor do it: a worker that dies after it
was ready is logged and replaced, so one crash (or OOM kill) costs its in-flight requests, not
the service. A worker that exits before it is ready failed to start (a migration, the
database): the same would happen again, so the parent stops the others and exits 1, as
gunicorn halts on a boot error. More than MAX_RESTARTS deaths within RESTART_WINDOW also stop
everything with exit 1, rather than a crash loop. SIGTERM or SIGINT to the parent reaches
every worker, each stops gracefully, and the parent exits 0 when all of them did.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkProcess
from types import FrameType

from apiclub.errors import ApiclubError
from apiclub.server.launcher import STOP_MARGIN, Server
from apiclub.server.sockets import bind_listeners
from apiclub.settings import Settings

logger = logging.getLogger("apiclub.workers")

SECONDS = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60 * SECONDS
POLL = 0.5 * SECONDS
"""How often the parent looks at its stop flag between worker events."""
KILL_WAIT = 5 * SECONDS
PARENT_CHECK_INTERVAL = 1 * SECONDS
"""How often a worker checks that its parent lives; an orphan stops (gunicorn does the same)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Worker:
    process: ForkProcess
    ready: Connection
    """The parent's end of the pipe on which the worker sends its pid once it serves."""
    is_ready: bool = False


class Supervisor:
    """Start, watch, replace and stop the worker processes of one `apiclub serve`."""

    def __init__(self, settings: Settings, on_ready: Callable[[Server], None] | None) -> None:
        self.settings = settings
        self.on_ready = on_ready
        api_socket, redirect_socket = bind_listeners(settings)
        # Prepared here, in the parent: certificates ready and ports known before any fork.
        self.server = Server(settings, api_socket=api_socket, redirect_socket=redirect_socket)
        self.sockets = (api_socket, redirect_socket)
        self.workers: list[_Worker] = []
        self.deaths: collections.deque[float] = collections.deque()
        self.stopping = False

    def run(self) -> int:
        """Serve until a stop signal (exit status 0) or a fatal worker failure (1)."""
        try:
            self.server.prepare()
        except BaseException:
            self.server.close()
            raise
        previous = {signum: signal.signal(signum, self._request_stop) for signum in STOP_SIGNALS}
        status = 1
        try:
            self.workers = [self._start() for _ in range(self.settings.workers)]
            status = self._watch()
        finally:
            status = max(status, self._stop_all())
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.server.close()
        return status

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self) -> _Worker:
        ours, theirs = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.get_context("fork").Process(
            target=_worker_main,
            args=(self.settings, *self.sockets, theirs),
            name="apiclub-worker",
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _watch(self) -> int:
        announced = False
        while not self.stopping:
            waited: list[Connection | int] = [w.ready for w in self.workers if not w.is_ready]
            events = wait(waited + self._sentinels(), POLL)
            for worker in list(self.workers):
                dead = worker.process.sentinel in events
                if worker.ready in events and not worker.is_ready:
                    try:
                        worker.ready.recv()
                    except EOFError:
                        dead = True  # it exited before it was ready
                    else:
                        worker.is_ready = True
                        logger.info("worker %d serving", worker.process.pid)
                if dead and not self._replace(worker):
                    return 1
            if not announced and all(w.is_ready for w in self.workers):
                announced = True
                pids = ", ".join(str(w.process.pid) for w in self.workers)
                logger.info("%d workers serving (pids %s)", len(self.workers), pids)
                if self.on_ready is not None:
                    self.on_ready(self.server)
        return 0

    def _sentinels(self) -> list[Connection | int]:
        return [w.process.sentinel for w in self.workers]

    def _replace(self, dead: _Worker) -> bool:
        """Replace a worker that died while serving; False when that must stop everything."""
        dead.process.join()
        dead.ready.close()
        self.workers.remove(dead)
        how = _describe_exit(dead.process.exitcode)
        if self.stopping:
            return True
        if not dead.is_ready:
            logger.error("worker %d %s before it was ready; stopping", dead.process.pid, how)
            return False
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) > MAX_RESTARTS:
            logger.error(
                "worker %d %s: %d workers died within %.0f s; stopping",
                dead.process.pid,
                how,
                len(self.deaths),
                RESTART_WINDOW,
            )
            return False
        logger.warning("worker %d %s; starting a new one", dead.process.pid, how)
        self.workers.append(self._start())
        return True

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for their graceful stop; 1 if any failed or hung."""
        for worker in self.workers:
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.settings.grace_period + STOP_MARGIN + KILL_WAIT
        status = 0
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.error("worker %d did not stop; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join()
            if worker.process.exitcode != 0:
                how = _describe_exit(worker.process.exitcode)
                logger.error("worker %d %s while stopping", worker.process.pid, how)
                status = 1
            worker.ready.close()
        self.workers = []
        return status


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _worker_main(
    settings: Settings,
    api_socket: socket.socket,
    redirect_socket: socket.socket | None,
    ready: Connection,
) -> None:
    """A worker process: serve on the inherited sockets until SIGTERM; exit 1 on failure."""
    parent = os.getppid()
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    try:
        server = Server(settings, api_socket=api_socket, redirect_socket=redirect_socket)
        asyncio.run(_serve(server, ready, parent))
    except ApiclubError as exc:
        sys.stderr.write(f"apiclub: error: {exc}\n")
        sys.exit(1)


async def _serve(server: Server, ready: Connection, parent: int) -> None:
    server.prepare()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)

    async def report_ready() -> None:
        await server.ready.wait()
        ready.send(os.getpid())

    async def watch_parent(parent: int) -> None:
        # A parent killed with SIGKILL cannot stop its workers: they notice and stop.
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_INTERVAL)
        logger.warning("worker %d: the parent process is gone; stopping", os.getpid())
        stop.set()

    helpers = [asyncio.create_task(report_ready()), asyncio.create_task(watch_parent(parent))]
    try:
        await server.serve(stop.wait)
    finally:
        for helper in helpers:
            helper.cancel()
