"""Take the client's address and scheme from a reverse proxy's headers, from trusted peers only.

Modelled on uvicorn's `ProxyHeadersMiddleware`, which trusts by the peer's address, not on
Hypercorn's `ProxyFixMiddleware`, which trusts a hop count: a client that reaches the API
directly cannot choose the address the access log and rate limits see.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from apiclub.server.asgi import ASGIApp, Receive, Scope, Send
from apiclub.settings import ProxyNetwork

SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss")}


class ProxyHeadersMiddleware:
    """Rewrite `scope["client"]` and `scope["scheme"]` from X-Forwarded-* sent by a trusted peer.

    The client is the rightmost X-Forwarded-For entry that is not itself a trusted proxy
    (entries left of it could be forged by the client); X-Real-IP is used when there is no
    X-Forwarded-For. The scheme comes from the last X-Forwarded-Proto value.
    """

    def __init__(self, app: ASGIApp, trusted: Iterable[ProxyNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            client = scope.get("client")
            if client is not None and self.is_trusted(client[0]):
                self._apply(scope)
        await self.app(scope, receive, send)

    def is_trusted(self, host: str) -> bool:
        """Whether `host` (an IP address as text) lies in a trusted network."""
        address = _bare_ip(host)
        if address is None:
            return False
        return any(ipaddress.ip_address(address) in network for network in self.trusted)

    def _apply(self, scope: Scope) -> None:
        headers = _header_values(scope)
        if proto := headers.get(b"x-forwarded-proto"):
            scheme = proto.rsplit(",", 1)[-1].strip().lower()
            if scheme in SCHEMES:
                scope["scheme"] = SCHEMES[scheme][0 if scope["type"] == "http" else 1]
        if forwarded_for := headers.get(b"x-forwarded-for"):
            chain = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
            untrusted = [entry for entry in chain if not self.is_trusted(entry)]
            host = untrusted[-1] if untrusted else (chain[0] if chain else None)
        else:
            host = (headers.get(b"x-real-ip") or "").strip() or None
        if host is not None and (address := _bare_ip(host)) is not None:
            scope["client"] = (address, 0)


def _header_values(scope: Scope) -> dict[bytes, str]:
    """Headers of interest, repeated ones joined with commas (RFC 9110 5.3)."""
    wanted = (b"x-forwarded-for", b"x-forwarded-proto", b"x-real-ip")
    values: dict[bytes, list[str]] = {}
    for name, value in scope.get("headers", ()):
        if name in wanted:
            values.setdefault(name, []).append(value.decode("latin-1"))
    return {name: ",".join(parts) for name, parts in values.items()}


def _bare_ip(text: str) -> str | None:
    """`text` as a canonical IP address, or None. Python accepts an IPv6 zone (`fe80::1%eth0`,
    RFC 4007) with any text after the `%`: a proxy's header could then hand the access log and
    the rate limit an address carrying arbitrary text, so a zone is refused."""
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
