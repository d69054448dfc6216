"""Run a `Server` in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from apiclub.server.launcher import Server
from apiclub.settings import Settings


async def run_until_signalled(
    settings: Settings, on_ready: Callable[[Server], None] | None = None
) -> None:
    """Prepare and serve; SIGTERM or SIGINT starts a graceful stop.

    Passing a shutdown trigger turns off Hypercorn's own signal handling (NOTES.md), so the
    handlers are installed here, once, for both listeners.
    """
    server = Server(settings)
    server.prepare()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def announce() -> None:
        await server.ready.wait()
        if on_ready is not None:
            on_ready(server)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(stop.wait)
    finally:
        announcer.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
