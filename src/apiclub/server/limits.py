"""Per-process limits on what clients may hold: open connections, and time to send a request.

- **Connections.** Each listening socket is served through a `CappedListener`, whose
  `accept()` (asyncio's accept loop calls it) counts the connections open in the process over
  both listeners. At `max_connections`, the connection that has been sending its request the
  longest is cut to make room (a client that sends a request at once is never that one, so
  slow-drip clients cannot keep everyone else out); with none such, the new connection is
  accepted and closed at once (as nginx does past `worker_connections`), so the backlog
  drains and the connections already open keep their file descriptors. Should the process
  still run out of descriptors (`EMFILE`), one spare descriptor kept for the purpose is
  released to accept and close the waiting connection (nginx's and libuv's trick), and one
  warning is logged per `LOG_INTERVAL`, never one per accept.
- **Request deadline.** A `RequestClock` starts at a request's first byte: its head and body
  must arrive within `request_timeout`, extended by 1/`request_min_rate` seconds for each byte
  received, and never beyond `request_max_time` (Apache's mod_reqtimeout `body=30,MinRate=1024`
  with a cap; nginx's `client_body_timeout` only bounds the gap between two reads, so a body
  dripped a byte every few seconds would hold a connection for ever).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apiclub.settings import Settings
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.server")

LOG_INTERVAL = 60 * SECONDS
"""At most one warning per interval about refused connections or a lack of descriptors."""
RESERVED_FDS = 64
"""Descriptors left beside client connections (database, certificates, logs, the spare) when
the cap is derived from the open-file limit."""
MIN_CONNECTIONS = 16
DEFAULT_MAX_CONNECTIONS = 10_000
"""The cap when the open-file limit is unlimited or higher than this."""
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


@dataclass(frozen=True)
class RequestDeadline:
    """How long a request may take to arrive (settings `request_*`; module docstring)."""

    timeout: float
    min_rate: int
    max_time: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestDeadline:
        return cls(settings.request_timeout, settings.request_min_rate, settings.request_max_time)

    def clock(
        self, cap: ConnectionCap | None = None, cut: Callable[[], None] | None = None
    ) -> RequestClock:
        """A stopped clock for one connection; while it runs, `cap` may call `cut` to make
        room for a new connection."""
        return RequestClock(self, cap, cut)


class RequestClock:
    """The deadline of the request a connection is receiving, if it is receiving one."""

    __slots__ = ("_cap", "_cut", "_limits", "_received", "_started")

    def __init__(
        self,
        limits: RequestDeadline,
        cap: ConnectionCap | None = None,
        cut: Callable[[], None] | None = None,
    ) -> None:
        self._limits = limits
        self._cap = cap if cut is not None else None
        self._cut = cut
        self._started: float | None = None
        self._received = 0

    @property
    def running(self) -> bool:
        return self._started is not None

    def received(self, size: int, now: float) -> None:
        """Count `size` bytes of the request; the first ones start the clock."""
        if self._started is None:
            self._started = now
            self._received = 0
            if self._cap is not None and self._cut is not None:
                self._cap.receiving(self, self._cut)
        self._received += size

    def stop(self) -> None:
        """The request has arrived whole, or the connection is idle again or closed."""
        self._started = None
        if self._cap is not None:
            self._cap.received(self)

    def deadline(self) -> float | None:
        """When the request must have arrived (the loop's clock), or None when not running."""
        if self._started is None:
            return None
        limits = self._limits
        allowed = min(limits.max_time, limits.timeout + self._received / limits.min_rate)
        return self._started + allowed


class ConnectionCap:
    """Counts the client connections open in this process and refuses those past the cap."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.open = 0
        self.refused = 0
        self.cut = 0
        self._last_warning = -LOG_INTERVAL
        self._spare: int | None = _open_spare()
        self._receiving: dict[RequestClock, Callable[[], None]] = {}
        """Connections sending a request, oldest first, with how to cut each."""

    def receiving(self, clock: RequestClock, cut: Callable[[], None]) -> None:
        """A connection began to send a request."""
        self._receiving.pop(clock, None)
        self._receiving[clock] = cut

    def received(self, clock: RequestClock) -> None:
        """That connection's request arrived (or the connection closed)."""
        self._receiving.pop(clock, None)

    def cut_slowest(self) -> bool:
        """Cut the connection that has been sending its request the longest; whether any."""
        if not self._receiving:
            return False
        clock = next(iter(self._receiving))
        cut = self._receiving.pop(clock)
        clock._cap = None  # its stop() has nothing left to tell
        cut()
        self.cut += 1
        return True

    def listener(self, sock: socket.socket) -> CappedListener:
        """`sock` (bound, listening) as a socket whose accepts this cap counts.

        The listener holds a duplicate of `sock`'s descriptor; closing it (asyncio does, at
        stop) closes `sock` too, as serving `sock` itself would have.
        """
        return CappedListener(self, sock)

    def warn(self, message: str, *args: Any) -> None:
        """Log `message` unless a warning was logged less than `LOG_INTERVAL` ago."""
        now = time.monotonic()
        if now - self._last_warning >= LOG_INTERVAL:
            self._last_warning = now
            logger.warning(message, *args)

    def shed_one(self, listener: socket.socket) -> None:
        """Out of descriptors: accept and close one waiting connection with the spare one."""
        if self._spare is None:
            return
        os.close(self._spare)
        self._spare = None
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]
            os.close(fd)
        except OSError:
            pass
        self._spare = _open_spare()


class CappedListener(socket.socket):
    """A listening socket whose `accept()` keeps to its `ConnectionCap` (module docstring)."""

    def __init__(self, cap: ConnectionCap, sock: socket.socket) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        self._cap = cap
        self._original = sock

    def accept(self) -> tuple[socket.socket, Any]:
        cap = self._cap
        while True:
            try:
                fd, address = self._accept()  # type: ignore[attr-defined]
            except OSError as exc:
                if exc.errno not in _OUT_OF_FDS:
                    raise
                cap.warn(
                    "out of file descriptors (%s, %d connections open): new connections are "
                    "closed at once; raise the open-file limit (LimitNOFILE=, ulimit -n) or "
                    "lower APICLUB_MAX_CONNECTIONS",
                    os.strerror(exc.errno),
                    cap.open,
                )
                cap.shed_one(self)
                raise BlockingIOError(errno.EAGAIN, "shed a connection") from None
            if cap.open < cap.maximum:
                break
            if cap.cut_slowest():  # its descriptor is closed on the loop's next turn
                cap.warn(
                    "%d connections open (APICLUB_MAX_CONNECTIONS): cutting those that have "
                    "been sending a request the longest to make room (%d so far)",
                    cap.open,
                    cap.cut,
                )
                break
            os.close(fd)  # refused: the client sees the connection closed
            cap.refused += 1
            cap.warn(
                "%d connections open (APICLUB_MAX_CONNECTIONS): new ones are closed at once "
                "(%d so far)",
                cap.open,
                cap.refused,
            )
        cap.open += 1
        connection = _CountedSocket(self.family, self.type, self.proto, fileno=fd)
        connection._cap = cap
        if socket.getdefaulttimeout() is None and self.gettimeout():
            connection.setblocking(True)
        return connection, address

    def close(self) -> None:
        super().close()
        self._original.close()


class _CountedSocket(socket.socket):
    """An accepted connection that gives its place in the cap back when closed."""

    _cap: ConnectionCap | None = None

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.open -= 1
        super().close()

    def detach(self) -> int:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.open -= 1
        return super().detach()


def _open_spare() -> int | None:
    with contextlib.suppress(OSError):
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return None


def derived_max_connections() -> int:
    """The cap for `max_connections = 0`: the soft open-file limit less `RESERVED_FDS`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > DEFAULT_MAX_CONNECTIONS + RESERVED_FDS:
        return DEFAULT_MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, soft - RESERVED_FDS)


_caps: dict[int, ConnectionCap] = {}


def connection_cap(settings: Settings) -> ConnectionCap:
    """This process's one cap (both listeners share it), made on first use from `settings`."""
    maximum = settings.max_connections or derived_max_connections()
    key = os.getpid()  # a forked worker counts its own connections
    cap = _caps.get(key)
    if cap is None:
        cap = _caps[key] = ConnectionCap(maximum)
        logger.debug("at most %d open connections in this process", maximum)
    cap.maximum = maximum
    return cap
