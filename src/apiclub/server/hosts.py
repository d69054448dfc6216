"""Which host a request is for, and a middleware that refuses the hosts we do not serve.

A Host check stops DNS-rebinding and keeps the redirect listener from becoming an open
redirect. Over HTTP/2 the ASGI scope carries the `:authority` pseudo-header instead of `host`
(RFC 9113 8.3.1), so both are read.
"""

from __future__ import annotations

from collections.abc import Iterable

from apiclub.names import parse_host
from apiclub.server.asgi import ASGIApp, Receive, Scope, Send, send_json


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
