"""Hypercorn configuration for our two listeners.

Hypercorn's `serve()` takes neither a ready-made SSLContext nor sockets (0.18 builds both
from its config): this subclass hands it ours, so certificates are chosen per connection by SNI
from a map that renewal swaps, and the sockets are the ones we bound (and reported errors for)
ourselves.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl

from hypercorn.config import Config, Sockets

from apiclub.compat.request_deadline import DEADLINE_ATTRIBUTE
from apiclub.server.access_log import AccessLogger
from apiclub.server.json_access_log import JsonAccessLogger
from apiclub.server.limits import ConnectionCap, RequestDeadline, connection_cap
from apiclub.server.sockets import BACKLOG
from apiclub.settings import ProxyNetwork, Settings
from apiclub.units import KIB, SECONDS

ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
"""Client address first (after proxy-header trust), request line, status, bytes, seconds."""


# Limits against slow or hostile clients (documented in README "Limits"). Hypercorn's defaults
# are kept where they match nginx's: 16 KiB of request line and headers (nginx: 4 x 8k large
# buffers), 100 concurrent h2 streams (nginx: http2_max_concurrent_streams 128).
KEEP_ALIVE_TIMEOUT = 5 * SECONDS
"""Idle keep-alive connections are closed after this (Hypercorn's default)."""
READ_TIMEOUT = int(30 * SECONDS)
"""A connection that sends nothing for this long is closed (Hypercorn has no default, and
types it in whole seconds)."""
TLS_HANDSHAKE_TIMEOUT = 10 * SECONDS
"""A TLS handshake must finish within this; Hypercorn's 60 s lets idle sockets pile up."""
STARTUP_TIMEOUT = 600 * SECONDS
"""Migrations on a large database may take minutes; Hypercorn's 60 s would abort them."""
MAX_REQUEST_HEAD = 16 * KIB
H2_MAX_STREAMS = 100
MAX_REQUESTS_PER_CONNECTION = 1000
"""Requests (h1) or streams (h2) per connection before it is closed (h2: GOAWAY).

Hypercorn's mitigation of HTTP/2 rapid reset (CVE-2023-44487, pgjones/hypercorn#146): reset
streams bypass the concurrent-streams limit, so a connection may open only this many in all,
then must pay a new TLS handshake. Hypercorn's default, and nginx's `keepalive_requests`;
set here so that a change of default upstream cannot silently lift it.
"""


class ListenerConfig(Config):
    """A Hypercorn config serving on pre-bound sockets with an optional SSLContext."""

    def __init__(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        trusted_proxies: tuple[ProxyNetwork, ...] = (),
    ) -> None:
        super().__init__()
        self._socket = sock
        self._ssl_context = ssl_context
        self.connection_cap: ConnectionCap | None = None
        """Counts and caps this process's connections (`limits`); none when unset."""
        self.served_socket: socket.socket = sock
        """What Hypercorn accepts on: `sock`, or the cap's listener (a duplicate descriptor)."""
        self._trusted_proxies = trusted_proxies

    def drains_at_stop(self, host: str) -> bool:
        """Whether a stop drains, not closes, an idle plain connection from `host`: only a
        trusted proxy's (`compat.stop_policy._drains_at_stop`)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted_proxies)

    @property
    def ssl_enabled(self) -> bool:
        return self._ssl_context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl_context

    def create_sockets(self) -> Sockets:
        sock = self._socket
        if self.connection_cap is not None:
            sock = self.connection_cap.listener(sock)
        self.served_socket = sock
        if self._ssl_context is not None:
            return Sockets([sock], [], [])
        return Sockets([], [sock], [])


def create_listener_config(
    settings: Settings, sock: socket.socket, ssl_context: ssl.SSLContext | None
) -> ListenerConfig:
    """A config for one listener: logging, graceful stop and limits from settings."""
    config = ListenerConfig(sock, ssl_context, settings.trusted_proxies)
    config.accesslog = logging.getLogger("apiclub.access")
    config.errorlog = logging.getLogger("apiclub.server")
    config.access_log_format = ACCESS_LOG_FORMAT
    config.logger_class = JsonAccessLogger if settings.log_format == "json" else AccessLogger
    config.graceful_timeout = settings.grace_period
    config.backlog = BACKLOG
    # Hypercorn sends `server: hypercorn-h11` by default; do not advertise the stack.
    config.include_server_header = False
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.read_timeout = READ_TIMEOUT
    config.ssl_handshake_timeout = TLS_HANDSHAKE_TIMEOUT
    config.startup_timeout = STARTUP_TIMEOUT
    config.h11_max_incomplete_size = MAX_REQUEST_HEAD
    config.h2_max_concurrent_streams = H2_MAX_STREAMS
    config.h2_max_header_list_size = MAX_REQUEST_HEAD  # h2 enforces it (hpack)
    config.keep_alive_max_requests = MAX_REQUESTS_PER_CONNECTION
    config.connection_cap = connection_cap(settings)
    setattr(config, DEADLINE_ATTRIBUTE, RequestDeadline.from_settings(settings))
    return config
