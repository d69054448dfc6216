"""Exponential backoff, shared by what retries after a failure likely to repeat for a while:
certificate orders (`tls.manager`), workers that cannot boot (`server.worker_handle`),
Litestream restarts, scheduled snapshots and a PostgreSQL server that is not up yet."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff: `initial`, doubling per failure, capped at `maximum`."""

    initial: float
    maximum: float
    failures: int = 0
    not_before: float = 0.0
    """`time.monotonic()` before which no new attempt is made."""

    def ready(self) -> bool:
        """Tell whether the next attempt may run now."""
        return time.monotonic() >= self.not_before

    def remaining(self) -> float:
        """Seconds until the next attempt may run."""
        return max(0.0, self.not_before - time.monotonic())

    def fail(self, retry_after: float | None = None) -> float:
        """Record a failure; return the delay before the next attempt."""
        delay: float = min(self.initial * 2.0**self.failures, self.maximum)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum))
        self.failures += 1
        self.not_before = time.monotonic() + delay
        return delay

    def shorten(self, delay: float) -> float:
        """Bring the next attempt forward to `delay` seconds from now (never later than set)."""
        self.not_before = min(self.not_before, time.monotonic() + delay)
        return min(delay, self.remaining())

    def succeed(self) -> None:
        """Forget past failures."""
        self.failures = 0
        self.not_before = 0.0
