"""A time limit on one SQLite read: past it, SQLite interrupts the statement.

A read that runs too long (a pathological filter, a page deep in a huge table) would hold one
of the few reader connections for as long as it runs, and with them every request that needs
one. SQLite's progress handler is called every `CHECK_EVERY` virtual-machine instructions of
the statements running on its connection; when it returns true, the statement stops with
`SQLITE_INTERRUPT` (https://sqlite.org/c3ref/progress_handler.html), which the API answers 503
with `Retry-After`. The connection stays usable for the next read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from apiclub.units import SECONDS

READ_DEADLINE = 2 * SECONDS
"""How long one read may run on a pooled reader before SQLite interrupts it."""
CHECK_EVERY = 1_000
"""Instructions between two looks at the clock: microseconds apart, a small cost to a scan."""


@contextmanager
def read_deadline(connection: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt what runs on `connection` inside the block once `seconds` have passed."""
    deadline = time.monotonic() + seconds

    def past_deadline() -> bool:
        return time.monotonic() > deadline

    connection.set_progress_handler(past_deadline, CHECK_EVERY)
    try:
        yield
    finally:
        connection.set_progress_handler(None, 0)


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's answer to a read stopped by `read_deadline`."""
    code = getattr(exc, "sqlite_errorcode", 0)
    return isinstance(exc, sqlite3.OperationalError) and code & 0xFF == sqlite3.SQLITE_INTERRUPT
