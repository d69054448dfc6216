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
    admin = None
    if settings.metrics_port:
        from apiclub.server.admin import ServerAdmin  # prometheus-client: only when asked

        try:
            admin = ServerAdmin(server, stop)
        except BaseException:
            server.close()
            raise
    server.admin_port = admin.port if admin is not None else None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def announce() -> None:
        await server.ready.wait()
        if on_ready is not None:
            on_ready(server)

    announcer = asyncio.create_task(announce())
    admin_stop = asyncio.Event()
    admin_task = asyncio.create_task(admin.serve(admin_stop)) if admin is not None else None
    try:
        await server.serve(stop.wait)
    finally:
        announcer.cancel()
        # The admin listener outlives the drain: /livez stays 200 and /readyz 503 until now.
        admin_stop.set()
        if admin_task is not None:
            await admin_task
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
