"""One worker process of `apiclub serve`, started by its parent (generations.py).

A worker is a fresh interpreter running the same command line as its parent, with the
listening sockets inherited (`inherited_sockets`) and a pipe on which it tells the parent
that it serves, with its banner, or why it will not. Every worker, with `--workers 1` or
more, runs this one path: a `launcher.Server` on the inherited sockets until SIGTERM.

SIGUSR2 from the parent is a stop too, at a reload: the socket lives on in the next worker,
so connections accepted a moment ago are handed over, not dropped (`Server.hand_over`).
Its stop signals and SIGHUP are blocked from the parent's fork (the mask survives exec)
until its event loop handles them, so a stop that arrives while it starts is a graceful stop.
SIGHUP is the parent's to act on: a worker logs and ignores it. A worker whose parent is gone
(killed with SIGKILL) stops, as gunicorn's do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection

from apiclub.errors import ApiclubError
from apiclub.server.generations import BLOCKED, RETIRE, STOP_SIGNALS
from apiclub.server.inherited_sockets import READY_FD_VARIABLE, open_listeners
from apiclub.server.launcher import Server
from apiclub.server.worker_handle import RestartBackoff
from apiclub.settings import Settings

__all__ = ["RestartBackoff", "is_worker", "serve_worker"]

logger = logging.getLogger("apiclub.workers")

PARENT_CHECK_INTERVAL = 1.0
"""Seconds between checks that the parent lives; an orphan stops (gunicorn does the same)."""


def is_worker(environ: Mapping[str, str]) -> bool:
    """Whether this process was started by a generations parent (it holds a ready pipe)."""
    return READY_FD_VARIABLE in environ


def serve_worker(
    settings: Settings, environ: Mapping[str, str], describe: Callable[[Server], str]
) -> int:
    """Serve on the inherited sockets until SIGTERM; exit status 0, or 1 after a failure.

    Args:
        settings: this worker's settings, read at its own start.
        environ: its environment (the inherited sockets, the ready pipe).
        describe: the banner the parent prints once every worker serves.
    """
    ready = Connection(int(environ[READY_FD_VARIABLE]), readable=False)
    parent = os.getppid()
    try:
        api_socket, redirect_socket = open_listeners(settings, environ)
        server = Server(settings, api_socket=api_socket, redirect_socket=redirect_socket)
        asyncio.run(_serve(server, ready, parent, describe))
    except ApiclubError as exc:
        try:
            ready.send(str(exc))
        except OSError:  # the parent is gone: say it here
            sys.stderr.write(f"apiclub: error: {exc}\n")
        return 1
    return 0


async def _serve(
    server: Server, ready: Connection, parent: int, describe: Callable[[Server], str]
) -> None:
    server.prepare()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)

    def retire() -> None:
        server.hand_over = True
        stop.set()

    loop.add_signal_handler(RETIRE, retire)
    loop.add_signal_handler(signal.SIGHUP, _hup_is_for_the_parent, parent)
    # Blocked since the fork: one that came while this worker started is delivered now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, BLOCKED)

    async def report_ready() -> None:
        await server.ready.wait()
        ready.send({"pid": os.getpid(), "banner": describe(server)})

    async def watch_parent() -> None:
        # A parent killed with SIGKILL cannot stop its workers: they notice and stop.
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_INTERVAL)
        logger.warning("worker %d: the parent process is gone; stopping", os.getpid())
        stop.set()

    helpers = [asyncio.create_task(report_ready()), asyncio.create_task(watch_parent())]
    try:
        await server.serve(stop.wait)
    finally:
        # The stop has begun. The parent forwards its own SIGTERM to every worker: once the
        # loop closes, the default action would turn that second signal into a kill (exit 1).
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
        for helper in helpers:
            helper.cancel()


def _hup_is_for_the_parent(parent: int) -> None:
    logger.warning(
        "worker %d: SIGHUP ignored; send it to the parent (pid %d) to reload", os.getpid(), parent
    )
