"""Which host a request is for, and a middleware that refuses the hosts we do not serve.

A Host check stops DNS-rebinding and keeps the redirect listener from becoming an open
redirect. Over HTTP/2 the ASGI scope carries the `:authority` pseudo-header instead of `host`
(RFC 9113 8.3.1), so both are read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from apiclub.server.asgi import ASGIApp, Receive, Scope, Send, send_json


def parse_host(value: str) -> str | None:
    """Return the host part of a Host header, normalised like configured names, or None if bad.

    Handles `name`, `name:port`, `[v6]`, `[v6]:port`, upper case and a trailing dot.
    """
    value = value.strip()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1 or (value[end + 1 :] and not _is_port_suffix(value[end + 1 :])):
            return None
        try:
            return str(ipaddress.IPv6Address(value[1:end]))
        except ValueError:
            return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host = value
    elif not port.isdigit():
        return None
    host = host.rstrip(".").lower()
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if not host or any(not (ch.isalnum() or ch in "-.") for ch in host) or not host.isascii():
        return None
    return host


def _is_port_suffix(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def request_host(scope: Scope) -> str | None:
    """The normalised host a request names: its `host` header, else its `:authority`."""
    authority: bytes | None = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            authority = value
            break
        if name == b":authority" and authority is None:
            authority = value
    if authority is None:
        return None
    try:
        return parse_host(authority.decode("ascii"))
    except UnicodeDecodeError:
        return None


class HostCheckMiddleware:
    """Answer 421 Misdirected Request (RFC 9110 15.5.20) to a Host that is not configured."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed_hosts = frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = request_host(scope)
            if host not in self.allowed_hosts:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                detail = f"this server does not serve host {host or '(none)'!r}"
                await send_json(send, 421, {"status_code": 421, "detail": detail})
                return
        await self.app(scope, receive, send)
