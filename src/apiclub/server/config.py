"""Hypercorn configuration for our two listeners.

Hypercorn's `serve()` takes neither a ready-made SSLContext nor sockets (NOTES.md, Hypercorn
0.18): this subclass hands it ours, so certificates are chosen per connection by SNI from a map
that renewal swaps, and the sockets are the ones we bound (and reported errors for) ourselves.
"""

from __future__ import annotations

import logging
import socket
import ssl

from hypercorn.config import Config, Sockets

from apiclub.server.sockets import BACKLOG
from apiclub.settings import Settings

ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
"""Client address first (after proxy-header trust), request line, status, bytes, seconds."""


class ListenerConfig(Config):
    """A Hypercorn config serving on pre-bound sockets with an optional SSLContext."""

    def __init__(self, sock: socket.socket, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._socket = sock
        self._ssl_context = ssl_context

    @property
    def ssl_enabled(self) -> bool:
        return self._ssl_context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl_context

    def create_sockets(self) -> Sockets:
        if self._ssl_context is not None:
            return Sockets([self._socket], [], [])
        return Sockets([], [self._socket], [])


def create_listener_config(
    settings: Settings, sock: socket.socket, ssl_context: ssl.SSLContext | None
) -> ListenerConfig:
    """A config for one listener: logging, graceful stop and limits from settings."""
    config = ListenerConfig(sock, ssl_context)
    config.accesslog = logging.getLogger("apiclub.access")
    config.errorlog = logging.getLogger("apiclub.server")
    config.access_log_format = ACCESS_LOG_FORMAT
    config.graceful_timeout = settings.grace_period
    config.backlog = BACKLOG
    # Hypercorn sends `server: hypercorn-h11` by default; do not advertise the stack.
    config.include_server_header = False
    return config
