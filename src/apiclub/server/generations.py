"""The parent of `apiclub serve`: holds the sockets, runs generations of workers, reloads.

As nginx's master and gunicorn's arbiter do it, a small process that serves nothing itself:

- It binds the listening sockets, or takes them from systemd (`LISTEN_FDS`), and keeps them
  for its whole life, so a reload never closes a port and clients queue in the kernel.
- Each worker is a fresh interpreter running the same `apiclub serve` command line
  (`inherited_sockets.spawn_with_sockets`): newly installed code and a changed environment
  file (`--env-file`) are what a new worker runs. It reports on a pipe when it serves
  (settings valid, certificates ready, migrations applied, the listener started), or why it
  failed.
- SIGHUP (`apiclub reload`, `systemctl reload`) replaces the workers one at a time, each new
  one ready before its old one is told to stop; the old one drains its in-flight requests.
  A new worker that fails (a broken setting, an import error, a failing migration) is
  logged with its reason, the reload stops there, and the workers still running serve on.
- A worker that dies is replaced; more than MAX_RESTARTS deaths within RESTART_WINDOW stop
  everything with exit 1. A replacement that fails to boot is retried after a growing delay.
  A worker that fails at the first start stops the service with its reason (exit 1).
- SIGTERM or SIGINT reaches every worker; each stops gracefully; exit 0 when all did.
- systemd (`Type=notify`) hears READY=1, RELOADING=1, STOPPING=1 and STATUS= lines from
  this process, its main pid for the service's life; the pid file in the data directory
  names it for `apiclub reload`.

Workers start with the stop signals and SIGHUP blocked (the mask survives exec) until their
event loop handles them, so a signal that arrives while one starts is not its death.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from types import FrameType

from apiclub.errors import ApiclubError
from apiclub.server.inherited_sockets import HTTP, HTTPS, open_listeners, spawn_with_sockets
from apiclub.server.pid_file import remove_pid_file, write_pid_file
from apiclub.server.sd_notify import notify
from apiclub.server.worker_handle import RestartBackoff, Worker, describe_exit
from apiclub.settings import Settings, TlsMode
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.workers")

MAX_RESTARTS = 5
RESTART_WINDOW = 60 * SECONDS
POLL = 0.5 * SECONDS
"""How often the parent looks at its signal flags between worker events."""
STOP_MARGIN = 5 * SECONDS
"""Past the grace period: a worker's own last-resort cut (launcher.STOP_MARGIN) and exit."""
KILL_WAIT = 5 * SECONDS
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RETIRE = signal.SIGUSR2
"""Parent to worker: stop, and the listening socket lives on (a reload, or systemd holds it):
hand over connections accepted a moment ago instead of dropping them (launcher.py)."""
BLOCKED = (*STOP_SIGNALS, signal.SIGHUP, RETIRE)
UNKNOWN_CAUSE = "it sent no reason (its traceback, if any, is above)"


class Generations:
    """Start, watch, reload and stop the worker processes of one `apiclub serve`."""

    def __init__(
        self,
        settings: Settings,
        argv: Sequence[str],
        environ: Mapping[str, str],
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        """Args:
        settings: this process's settings (the workers read their own at each start).
        argv: the command line that starts a worker: this process's own.
        environ: the environment this process started with, handed to each worker.
        on_ready: called with the first worker's banner once every worker serves.
        """
        self.settings = settings
        self.argv = list(argv)
        self.environ = dict(environ)
        self.on_ready = on_ready
        self.from_systemd = environ.get("LISTEN_PID") == str(os.getpid())
        """systemd holds the sockets too: they outlive this process."""
        api, redirect = open_listeners(settings, environ)
        api_name = HTTP if settings.tls is TlsMode.OFF else HTTPS
        self.sockets: list[tuple[str, socket.socket]] = [(api_name, api)]
        if redirect is not None:
            self.sockets.append((HTTP, redirect))
        self.workers: list[Worker] = []
        self.draining: list[Worker] = []
        """Old workers told to stop by a reload; reaped, never replaced."""
        self.generation = 0
        self.deaths: collections.deque[float] = collections.deque()
        self.backoff = RestartBackoff()
        self.due: list[float] = []
        """A heap of the times at which replacements that failed to boot are started again."""
        self.announced = False
        self.stopping = False
        self.reload_requested = False
        self.start_failure: str | None = None
        self.on_worker_exit: Callable[[int], None] | None = None
        self._wakeup = self._wakeup_writer = -1

    def run(self) -> int:
        """Serve until a stop signal (exit status 0) or a fatal worker failure (1).

        Raises:
            ApiclubError: a worker failed at the first start; the message is the worker's.
        """
        handlers = {signum: self._request_stop for signum in STOP_SIGNALS}
        handlers[signal.SIGHUP] = self._request_reload
        previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
        # A signal makes the waits below return at once (a byte on this pipe), not at POLL.
        wakeup, self._wakeup_writer = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = wakeup
        previous_wakeup = signal.set_wakeup_fd(self._wakeup_writer)
        status = 1
        try:
            if self._start_first():
                status = self._watch()
            elif self.start_failure is None:
                status = 0  # stopped while starting
        finally:
            notify(self.environ, stopping=1, status="stopping: draining in-flight requests")
            status = max(status, self._stop_all())
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(self._wakeup)
            os.close(self._wakeup_writer)
            for _, sock in self.sockets:
                sock.close()
            remove_pid_file(self.settings)
        if self.start_failure is not None:
            raise ApiclubError(self.start_failure)
        return status

    def _wait(self, objects: list[Connection | int], timeout: float | None) -> list[object]:
        """`multiprocessing.connection.wait`, also woken by any signal."""
        events = wait([*objects, self._wakeup], timeout)
        if self._wakeup in events:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wakeup, 512):
                    pass
        return [event for event in events if event != self._wakeup]

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _request_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    # Starting

    def _start(self) -> Worker:
        ours, theirs = Pipe(duplex=False)
        env = {key: value for key, value in self.environ.items() if key != "NOTIFY_SOCKET"}
        # Blocked across fork and exec, delivered once the worker's loop handles them.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
        try:
            pid = spawn_with_sockets(
                [sys.executable, *self.argv], env, self.sockets, theirs.fileno()
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            theirs.close()
        return Worker(pid, self.generation, ours, os.pidfd_open(pid), on_exit=self.on_worker_exit)

    def _start_first(self) -> int:
        """Start the workers: the first alone (it applies migrations, makes the local CA),
        then the others. 1 when all serve, 0 when a stop or failure came first."""
        first = self._start()
        self.workers.append(first)
        if not self._wait_ready(first):
            return self._first_failed(first)
        for _ in range(self.settings.workers - 1):
            self.workers.append(self._start())
        for worker in list(self.workers):
            if not worker.is_ready and not self._wait_ready(worker):
                return self._first_failed(worker)
        self._announce()
        return 1

    def _first_failed(self, worker: Worker) -> int:
        if not self.stopping:
            worker.reap()
            how = describe_exit(worker.exitcode)
            # Its reason becomes the one line on stderr (cli.py); without one, say it here.
            if worker.failure is None:
                logger.error("worker %d %s before it was ready; stopping", worker.pid, how)
            self.start_failure = worker.failure or f"a worker {how}: {UNKNOWN_CAUSE}"
        return 0

    def _wait_ready(self, worker: Worker) -> bool:
        """Wait until `worker` serves (True), or fails, exits or a stop comes (False)."""
        while not self.stopping:
            events = self._wait([worker.ready, worker.sentinel], POLL)
            if worker.ready in events and self._receive(worker):
                return True
            if worker.sentinel in events or worker.failure is not None:
                return False
        return False

    def _receive(self, worker: Worker) -> bool:
        """Read the worker's pipe: True when it serves."""
        try:
            message = worker.ready.recv()
        except EOFError:
            return False  # it exited before it was ready
        if isinstance(message, str):
            worker.failure = message
            return False
        worker.banner = str(message.get("banner", ""))
        worker.ready_at = time.monotonic()
        logger.info("worker %d serving (generation %d)", worker.pid, worker.generation)
        return True

    def _announce(self) -> None:
        self.announced = True
        pids = ", ".join(str(w.pid) for w in self.workers)
        if len(self.workers) > 1:
            logger.info("%d workers serving (pids %s)", len(self.workers), pids)
        write_pid_file(self.settings)
        notify(
            self.environ,
            ready=1,
            mainpid=os.getpid(),
            status=f"serving, generation {self.generation}, worker pids {pids}",
        )
        if self.on_ready is not None:
            self.on_ready(self.workers[0].banner)

    # Watching

    def _watch(self) -> int:
        while not self.stopping:
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
                continue
            events = self._wait(self._sentinels(), self._timeout())
            for worker in list(self.draining):
                if worker.sentinel in events:
                    worker.reap()
                    self.draining.remove(worker)
                    how = describe_exit(worker.exitcode)
                    logger.info("old worker %d %s after draining", worker.pid, how)
            for worker in list(self.workers):
                if worker.sentinel in events and not self._replace(worker):
                    return 1
            self._start_due()
            self._reset_backoff_if_healthy()
        return 0

    def _sentinels(self) -> list[Connection | int]:
        return [w.sentinel for w in (*self.workers, *self.draining)]

    def _timeout(self) -> float:
        if not self.due:
            return POLL
        return min(POLL, max(0.0, self.due[0] - time.monotonic()))

    def _replace(self, dead: Worker) -> bool:
        """Replace a worker that exited; False when that must stop everything."""
        if not dead.is_ready and dead.ready.poll():
            self._receive(dead)
        dead.reap()
        self.workers.remove(dead)
        if self.stopping:
            return True
        how = describe_exit(dead.exitcode)
        if not dead.is_ready:
            delay = self.backoff.failed(time.monotonic())
            heapq.heappush(self.due, time.monotonic() + delay)
            logger.error(
                "worker %d %s before it was ready: %s; starting a new one in %g s",
                dead.pid,
                how,
                dead.failure or UNKNOWN_CAUSE,
                delay,
            )
            return True
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) > MAX_RESTARTS:
            logger.error(
                "worker %d %s: %d workers died within %.0f s; stopping",
                dead.pid,
                how,
                len(self.deaths),
                RESTART_WINDOW,
            )
            return False
        logger.warning("worker %d %s; starting a new one", dead.pid, how)
        self._start_replacement()
        return True

    def _start_replacement(self) -> None:
        worker = self._start()
        self.workers.append(worker)
        if not self._wait_ready(worker) and not self.stopping:
            self._replace(worker)

    def _start_due(self) -> None:
        now = time.monotonic()
        while self.due and self.due[0] <= now and not self.stopping:
            heapq.heappop(self.due)
            self._start_replacement()

    def _reset_backoff_if_healthy(self) -> None:
        ready_times = [w.ready_at for w in self.workers if w.ready_at is not None]
        if self.backoff.reset_if_healthy(ready_times, time.monotonic()):
            logger.info(
                "a replacement worker has served for %g s: the next restart delay is %g s",
                self.backoff.healthy_after,
                self.backoff.first_delay,
            )

    # Reloading

    def _reload(self) -> None:
        """Replace every worker by a new generation, one at a time, new ready before old stops."""
        self.generation += 1
        logger.info("SIGHUP: starting generation %d", self.generation)
        notify(
            self.environ, reloading=1, status=f"reloading: starting generation {self.generation}"
        )
        for old in list(self.workers):
            new = self._start()
            if not self._wait_ready(new):
                self._abandon(new)
                return
            self.workers[self.workers.index(old)] = new
            old.signal(RETIRE)
            self.draining.append(old)
        pids = ", ".join(str(w.pid) for w in self.workers)
        logger.info("generation %d serving (pids %s)", self.generation, pids)
        write_pid_file(self.settings)
        notify(self.environ, ready=1, status=f"serving, generation {self.generation}, pids {pids}")

    def _abandon(self, new: Worker) -> None:
        """A new worker did not become ready: stop it, say why, keep the running ones."""
        if new.exitcode is None and not new.reap(block=False):
            new.signal(signal.SIGTERM)
            new.reap()
        if self.stopping:
            return
        if new.ready.closed is False and new.ready.poll():
            self._receive(new)
        reason = new.failure or f"it {describe_exit(new.exitcode)}: {UNKNOWN_CAUSE}"
        logger.error(
            "reload failed: generation %d worker %d did not start: %s; generation %d keeps serving",
            self.generation,
            new.pid,
            reason,
            self.workers[0].generation if self.workers else self.generation - 1,
        )
        notify(
            self.environ,
            ready=1,
            status=f"reload to generation {self.generation} failed: {reason}; still serving",
        )

    # Stopping

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for their graceful stop; 1 if any failed or hung."""
        everyone = [*self.workers, *self.draining]
        if not self.from_systemd:
            # The service stops: once the workers close theirs, new connections are refused
            # (a proxy retries them elsewhere) instead of waiting in a queue nobody reads.
            for _, sock in self.sockets:
                sock.close()
        for worker in everyone:
            if worker.exitcode is None:
                worker.signal(RETIRE if self.from_systemd else signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_period + STOP_MARGIN + KILL_WAIT
        status = 0
        for worker in everyone:
            if worker.exitcode is None:
                remaining = max(0.0, deadline - time.monotonic())
                if not wait([worker.sentinel], remaining):
                    logger.error("worker %d did not stop; killing it", worker.pid)
                    worker.signal(signal.SIGKILL)
                worker.reap()
            if worker.exitcode != 0 and worker.failure is None and self.start_failure is None:
                how = describe_exit(worker.exitcode)
                logger.error("worker %d %s while stopping", worker.pid, how)
                status = 1
        self.workers, self.draining = [], []
        return status
