"""Bind listening sockets ourselves, so a port problem is one clear line, not a traceback."""

from __future__ import annotations

import errno
import socket

from apiclub.errors import ListenError
from apiclub.settings import Settings, TlsMode

PRIVILEGED_PORT_LIMIT = 1024
BACKLOG = 1024
"""Pending connections the kernel queues; listening from bind time on means clients that
arrive while migrations run wait in this queue instead of being refused."""


def bind_socket(host: str, port: int, *, option: str) -> socket.socket:
    """Bind and listen on a non-blocking TCP socket on `host:port` (port 0 picks a free one).

    Args:
        host: address or name to bind; `::` listens on IPv6 and IPv4.
        port: TCP port.
        option: the flag that sets this port, named in error messages.

    Raises:
        ListenError: the address is unknown, the port is taken or needs privileges.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(
            f"cannot listen on {host!r}: {exc.strerror}; set --host/APICLUB_HOST to an "
            "address of this machine (127.0.0.1, 0.0.0.0 or ::)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and address[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(_explain(exc, host, port, option)) from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_listeners(
    settings: Settings, *, api: socket.socket | None = None
) -> tuple[socket.socket, socket.socket | None]:
    """Bind the API socket (unless given) and, when on, the redirect socket.

    With TLS off (behind a proxy) the API listens on the HTTP port and there is no redirect.
    The one place that decides which ports a process listens on: the serve parent binds here,
    and `Server.prepare` when it was given no sockets.
    """
    https_option, http_option = "--https-port/APICLUB_HTTPS_PORT", "--http-port/APICLUB_HTTP_PORT"
    if settings.tls is TlsMode.OFF:
        if api is None:
            api = bind_socket(settings.host, settings.http_port, option=http_option)
        return api, None
    given = api is not None
    if api is None:
        api = bind_socket(settings.host, settings.https_port, option=https_option)
    if not settings.http_port:
        return api, None
    try:
        return api, bind_socket(settings.host, settings.http_port, option=http_option)
    except BaseException:
        if not given:
            api.close()
        raise


def _explain(exc: OSError, host: str, port: int, option: str) -> str:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use: stop the program using it "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port with {option}"
        )
    if exc.errno == errno.EACCES and port < PRIVILEGED_PORT_LIMIT:
        return (
            f"permission denied listening on {where}: ports below {PRIVILEGED_PORT_LIMIT} need "
            "root or CAP_NET_BIND_SERVICE (run with sudo, use deploy/systemd/apiclub.service, "
            "or choose a port above 1023 with " + option + ")"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: this machine has no such address; check --host"
    return f"cannot listen on {where}: {exc.strerror}"
