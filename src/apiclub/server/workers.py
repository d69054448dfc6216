"""`apiclub serve --workers N`: N server processes sharing the listening sockets.

The parent binds the sockets and makes the certificates ready once (errors are one line before
any worker starts, and N workers never race to create the CA), then forks N workers. Each runs
a `Server` on the inherited sockets, and the kernel hands each new connection to whichever
worker accepts it first. Each worker has its own event loop, database connection and renewal
loop: migrations run under their file lock (applied once), ACME orders under the store's lock,
and challenge tokens are answered from the shared store by whichever worker gets the request.

Supervision, as nginx's master and gunicorn's arbiter do it:
- At the first start, a worker that exits before it is ready (a migration, the database) stops
  the service: the parent stops the others and exits 1 with the worker's reason, as gunicorn
  halts on a boot error. The same would happen again; the operator must act.
- Once the service has served, a worker that dies is replaced at once, so one crash (or OOM
  kill) costs its in-flight requests, not the service. More than MAX_RESTARTS deaths within
  RESTART_WINDOW stop everything with exit 1, rather than a crash loop.
- A replacement that exits before it is ready (PostgreSQL down longer than its start retry, the
  data directory read-only for a moment) is started again after a growing delay
  (`RestartBackoff`);
  the other workers keep serving. A replacement that serves for HEALTHY_AFTER resets the delay.
- SIGTERM or SIGINT to the parent reaches every worker, each stops gracefully, and the parent
  exits 0 when all of them did. A worker holds those signals blocked from the fork until its
  event loop handles them, so a stop that arrives while it starts is a graceful stop too.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkProcess
from types import FrameType

from apiclub.backoff import Backoff
from apiclub.errors import ApiclubError
from apiclub.server.launcher import STOP_MARGIN, Server
from apiclub.server.sockets import bind_listeners
from apiclub.settings import Settings

logger = logging.getLogger("apiclub.workers")

SECONDS = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60 * SECONDS
FIRST_DELAY = 1 * SECONDS
"""The wait before starting again a replacement that failed to boot; doubled at each failure."""
MAX_DELAY = 60 * SECONDS
HEALTHY_AFTER = 30 * SECONDS
"""A replacement that has served this long since the last boot failure resets the delay."""
POLL = 0.5 * SECONDS
"""How often the parent looks at its stop flag between worker events."""
KILL_WAIT = 5 * SECONDS
PARENT_CHECK_INTERVAL = 1 * SECONDS
"""How often a worker checks that its parent lives; an orphan stops (gunicorn does the same)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
UNKNOWN_CAUSE = "it sent no reason (its traceback, if any, is above)"


class RestartBackoff:
    """Delays between attempts to boot a replacement worker: doubling, capped, reset by health.

    A boot failure is likely to repeat until the operator or the network fixes it (a database
    down, a full disk): retrying at once would spin, giving up would stop healthy workers.
    """

    def __init__(
        self,
        first: float = FIRST_DELAY,
        cap: float = MAX_DELAY,
        healthy_after: float = HEALTHY_AFTER,
    ) -> None:
        self._delays = Backoff(initial=first, maximum=cap)
        self.first_delay = first
        self.healthy_after = healthy_after
        self.last_failure = float("-inf")

    def failed(self, now: float) -> float:
        """A replacement failed to boot at `now`: how long to wait before the next attempt."""
        self.last_failure = now
        return self._delays.fail()

    def reset_if_healthy(self, ready_times: Iterable[float], now: float) -> bool:
        """Reset when a worker ready since the last failure has served `healthy_after`."""
        if self._delays.failures == 0:
            return False
        if any(self.last_failure < ready <= now - self.healthy_after for ready in ready_times):
            self._delays.succeed()
            return True
        return False


@dataclass
class _Worker:
    process: ForkProcess
    ready: Connection
    """The parent's end of the pipe: the worker sends its pid once it serves, or why it failed."""
    ready_at: float | None = None
    failure: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready_at is not None


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
        self.backoff = RestartBackoff()
        self.due: list[float] = []
        """A heap of the times at which replacements that failed to boot are started again."""
        self.announced = False
        self.stopping = False
        self.start_failure: str | None = None
        self.on_worker_exit: Callable[[int], None] | None = None
        """Told the pid of each worker that exited (the metrics forget its live gauges)."""

    def run(self) -> int:
        """Serve until a stop signal (exit status 0) or a fatal worker failure (1).

        Raises:
            ApiclubError: a worker failed at the first start; the message is the worker's.
        """
        try:
            self.server.prepare()
        except BaseException:
            self.server.close()
            raise
        previous = {signum: signal.signal(signum, self._request_stop) for signum in STOP_SIGNALS}
        status = 1
        try:
            for _ in range(self.settings.workers):
                if not self.stopping:
                    self.workers.append(self._start())
            status = self._watch()
        finally:
            status = max(status, self._stop_all())
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.server.close()
        if self.start_failure is not None:
            raise ApiclubError(self.start_failure)
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
        # A stop signal between the fork and the worker's own handlers would kill it (SIG_DFL:
        # exit 1 for the service) or be lost (the parent's handler, inherited). The child
        # inherits this mask: the signal waits, pending, until its event loop handles it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        return _Worker(process, ours)

    def _watch(self) -> int:
        while not self.stopping:
            waited: list[Connection | int] = [w.ready for w in self.workers if not w.is_ready]
            events = wait(waited + self._sentinels(), self._timeout())
            for worker in list(self.workers):
                dead = worker.process.sentinel in events
                if worker.ready in events and not worker.is_ready:
                    dead = self._receive(worker) or dead
                if dead and not self._replace(worker):
                    return 1
            self._start_due()
            self._reset_backoff_if_healthy()
            self._announce()
        return 0

    def _timeout(self) -> float:
        if not self.due:
            return POLL
        return min(POLL, max(0.0, self.due[0] - time.monotonic()))

    def _receive(self, worker: _Worker) -> bool:
        """Read the worker's pipe: True when it will not be ready (it failed, or exited)."""
        try:
            message = worker.ready.recv()
        except EOFError:
            return True  # it exited before it was ready
        if isinstance(message, str):
            worker.failure = message
            return False  # its exit follows: the sentinel or the pipe's end says when
        worker.ready_at = time.monotonic()
        logger.info("worker %d serving", worker.process.pid)
        return False

    def _reset_backoff_if_healthy(self) -> None:
        ready_times = [w.ready_at for w in self.workers if w.ready_at is not None]
        if self.backoff.reset_if_healthy(ready_times, time.monotonic()):
            logger.info(
                "a replacement worker has served for %g s: the next restart delay is %g s",
                self.backoff.healthy_after,
                self.backoff.first_delay,
            )

    def _announce(self) -> None:
        if self.announced or self.due or not all(w.is_ready for w in self.workers):
            return
        self.announced = True
        pids = ", ".join(str(w.process.pid) for w in self.workers)
        logger.info("%d workers serving (pids %s)", len(self.workers), pids)
        if self.on_ready is not None:
            self.on_ready(self.server)

    def _start_due(self) -> None:
        now = time.monotonic()
        while self.due and self.due[0] <= now and not self.stopping:
            heapq.heappop(self.due)
            self.workers.append(self._start())

    def _sentinels(self) -> list[Connection | int]:
        return [w.process.sentinel for w in self.workers]

    def _replace(self, dead: _Worker) -> bool:
        """Replace a worker that exited; False when that must stop everything."""
        dead.process.join()
        dead.ready.close()
        self._exited(dead)
        self.workers.remove(dead)
        if self.stopping:
            return True
        if not dead.is_ready:
            return self._retry_boot(dead)
        how = _describe_exit(dead.process.exitcode)
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

    def _retry_boot(self, dead: _Worker) -> bool:
        """Schedule another try for a replacement that failed to boot; False at the first start."""
        how = _describe_exit(dead.process.exitcode)
        if not self.announced:
            logger.error("worker %d %s before it was ready; stopping", dead.process.pid, how)
            self.start_failure = dead.failure
            return False
        delay = self.backoff.failed(time.monotonic())
        heapq.heappush(self.due, time.monotonic() + delay)
        logger.error(
            "worker %d %s before it was ready: %s; starting a new one in %g s",
            dead.process.pid,
            how,
            dead.failure or UNKNOWN_CAUSE,
            delay,
        )
        return True

    def _exited(self, worker: _Worker) -> None:
        if self.on_worker_exit is not None and worker.process.pid is not None:
            self.on_worker_exit(worker.process.pid)

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
            self._exited(worker)
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
    """A worker process: serve on the inherited sockets until SIGTERM; exit 1 on failure.

    Its stop signals are blocked from the fork (`Supervisor._start`) until `_serve` handles
    them. A start-up failure goes to the parent, which logs it with what it does next.
    """
    parent = os.getppid()
    try:
        server = Server(settings, api_socket=api_socket, redirect_socket=redirect_socket)
        asyncio.run(_serve(server, ready, parent))
    except ApiclubError as exc:
        try:
            ready.send(str(exc))
        except OSError:  # the parent is gone: say it here
            sys.stderr.write(f"apiclub: error: {exc}\n")
        sys.exit(1)


async def _serve(server: Server, ready: Connection, parent: int) -> None:
    server.prepare()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    # Blocked since the fork: one that came while this worker started is delivered now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

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
        # The stop has begun. The parent forwards its own SIGTERM to every worker: once the
        # loop closes, the default action would turn that second signal into a kill (exit 1).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for helper in helpers:
            helper.cancel()
