"""A workaround for aiosqlite 0.22: a failed connect leaves its worker thread racing the loop.

When `aiosqlite.connect()` fails (here: the `DatabaseGuard` refuses a deleted or replaced
file, or the file system is full or read-only), `Connection._connect` queues the worker
thread's stop with a future and never awaits it. The thread then hands that future its result
through `loop.call_soon_threadsafe`; if the loop has closed meanwhile (a short script, a test,
the end of a stop) the thread dies with "RuntimeError: Event loop is closed" (aiosqlite#241,
fixed upstream by the still-open omnilib/aiosqlite#389). The patch awaits the stop after a
failed connect, so the thread has finished before the error reaches the caller. A cancelled
connect keeps aiosqlite's own path: the connector may still be running in the thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosqlite.core import Connection

_PATCHED = "_apiclub_awaits_stop_after_failed_connect"


def await_stop_after_failed_connect() -> None:
    """Patch `aiosqlite.Connection._connect` as the module docstring says; idempotent."""
    if getattr(Connection, _PATCHED, False):
        return

    async def _connect(self: Any) -> Connection:
        if self._connection is None:
            try:
                future = asyncio.get_event_loop().create_future()
                self._tx.put_nowait((future, self._connector))
                self._connection = await future
            except BaseException as exc:
                stopped = self.stop()
                self._connection = None
                if stopped is not None and not isinstance(exc, asyncio.CancelledError):
                    await stopped
                raise
        return self  # type: ignore[no-any-return]

    Connection._connect = _connect  # type: ignore[method-assign]
    setattr(Connection, _PATCHED, True)
