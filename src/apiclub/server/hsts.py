"""Strict-Transport-Security (RFC 6797) on HTTPS answers, for the names that should carry it.

HSTS tells a browser to use HTTPS only for a name until `max-age` runs out, and it cannot be
taken back sooner: so `auto` sends it only for public names whose certificate comes from ACME,
which a browser trusts and which apiclub keeps renewing. Local names (localhost, IPs, private
suffixes) never get it in `auto`: HSTS covers every port of a host (RFC 6797 8.3), so a
developer's `localhost` would stay HTTPS-only for a year for every other program they run.
The header is keyed on the request's host, so one server serving `localhost` and
`api.example.com` sends it for the latter only.
"""

from __future__ import annotations

from collections.abc import Iterable

from apiclub.server.asgi import ASGIApp, Message, Receive, Scope, Send
from apiclub.server.hosts import request_host
from apiclub.settings import HstsMode, Settings, TlsMode
from apiclub.tls import is_local_name

HEADER = b"strict-transport-security"


def hsts_hosts(settings: Settings, acme_names: Iterable[str]) -> frozenset[str]:
    """The configured names whose HTTPS answers carry Strict-Transport-Security.

    Args:
        settings: `hsts` (auto, on, off) and the TLS mode.
        acme_names: the names the certificate manager orders from ACME (`CertManager.acme_names`,
            empty without agreed terms of service, in `internal` and in `files` mode).

    With TLS off, none: the proxy in front answers the browser and decides (RFC 6797 7.2: the
    header means nothing over plain HTTP). `on`: every served name. `auto`: the ACME names that
    are public DNS names.
    """
    if settings.hsts is HstsMode.OFF or settings.tls is TlsMode.OFF:
        return frozenset()
    if settings.hsts is HstsMode.ON:
        return frozenset(settings.domains)
    return frozenset(name for name in acme_names if not is_local_name(name))


class HstsMiddleware:
    """Add `Strict-Transport-Security: max-age=N` to HTTPS answers for `hosts`.

    No `includeSubDomains` (apiclub knows only the names it serves, not their subdomains) and no
    `preload` (a commitment only the domain's owner can make, hard to undo).
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str], max_age: int) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.value = f"max-age={max_age}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The scheme check keeps plain HTTP out even if this is ever wired on such a listener:
        # RFC 6797 7.2 forbids the header there, and 8.1 has browsers ignore it.
        if (
            scope["type"] != "http"
            or scope.get("scheme") != "https"
            or request_host(scope) not in self.hosts
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, self.value)]
            await send(message)

        await self.app(scope, receive, send_with_hsts)
