"""The connections open on this process's listeners, so that a stop can end the last ones.

Hypercorn keeps no list of its connections. The compat layer's patch of `TCPServer.run`
(`compat.hypercorn_stop.track_connections`) reports each one here as it opens and closes,
with its TCP transport and its task; the launcher calls `abort` and then `cancel` for the
listeners whose grace period is over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypercorn.config import Config

from apiclub.compat.transports import SOCKET_TRANSPORT, TASK


class OpenConnections:
    """Hypercorn `TCPServer`s between the start and the end of their `run()`."""

    def __init__(self) -> None:
        self._open: set[Any] = set()

    def opened(self, server: Any) -> None:
        self._open.add(server)

    def closed(self, server: Any) -> None:
        self._open.discard(server)

    def of(self, config: Config) -> list[Any]:
        """The open connections of the listener that `config` configures."""
        return [server for server in self._open if server.config is config]

    def abort(self, config: Config) -> int:
        """Cut (close the TCP socket of) every connection still open on `config`'s listener.

        A TLS close waits for the client's close_notify for up to 30 s (asyncio's
        `SSL_SHUTDOWN_TIMEOUT`), and a connection cancelled at Hypercorn's graceful timeout
        waits for it again in its `finally` (`TCPServer._close` awaits `wait_closed()`): an
        idle client that never answers holds the process past any stop timeout. Closing the
        TCP transport reports the connection lost at once, which ends that wait. Called once
        the grace period is over, when nothing is left to answer.

        Returns:
            How many connections were cut.
        """
        doomed = self.of(config)
        for server in doomed:
            transport: asyncio.WriteTransport = getattr(server, SOCKET_TRANSPORT)
            transport.abort()
        return len(doomed)

    def cancel(self, config: Config) -> int:
        """Cancel the task of every connection still open on `config`'s listener; how many.

        The fallback when cutting did not end a connection. Hypercorn's stop waits for these
        tasks inside `asyncio.wait_for`, so they are cancelled, never the listener: a cancel
        landing there leaves Hypercorn reading the result of an unfinished `gather`
        (`InvalidStateError: Exception is not set.`, exit 1).
        """
        doomed = self.of(config)
        for server in doomed:
            task: asyncio.Task[None] = getattr(server, TASK)
            task.cancel()
        return len(doomed)


OPEN_CONNECTIONS = OpenConnections()
"""This process's connections: one registry, since Hypercorn's classes are patched once."""
