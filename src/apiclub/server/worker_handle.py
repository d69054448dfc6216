"""A worker process as its parent sees it, and the delays between failed boots.

Used by generations.py; kept apart so that the parent's module reads as its life cycle.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from apiclub.backoff import Backoff
from apiclub.units import SECONDS

FIRST_DELAY = 1 * SECONDS
"""The wait before starting again a replacement that failed to boot; doubled at each failure."""
MAX_DELAY = 60 * SECONDS
HEALTHY_AFTER = 30 * SECONDS
"""A replacement that has served this long since the last boot failure resets the delay."""


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
class Worker:
    """One worker process, seen from the parent."""

    pid: int
    generation: int
    ready: Connection
    """The parent's end of the pipe: the worker sends its banner once it serves, or why not."""
    sentinel: int
    """A pidfd: readable once the process has exited."""
    ready_at: float | None = None
    failure: str | None = None
    banner: str = ""
    exitcode: int | None = None
    on_exit: Callable[[int], None] | None = None
    """Told this worker's pid once it is reaped (the metrics forget its live gauges)."""

    @property
    def is_ready(self) -> bool:
        return self.ready_at is not None

    def reap(self, block: bool = True) -> bool:
        """Collect the exit status; whether the process has exited."""
        if self.exitcode is not None:
            return True
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.exitcode = os.waitstatus_to_exitcode(status)
        os.close(self.sentinel)
        self.ready.close()
        if self.on_exit is not None:
            self.on_exit(self.pid)
        return True

    def signal(self, signum: int) -> None:
        if self.exitcode is None:
            os.kill(self.pid, signum)


def describe_exit(code: int | None) -> str:
    """'exited with status 1', 'was killed by SIGKILL'."""
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
