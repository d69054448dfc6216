"""Count every API request by method, route template and status; give it a request id.

The route is Litestar's path template (`/task/{task_id:int}`), read from the scope after the
app ran, never the raw path: raw paths are chosen by clients and would make one time series
per URL. Requests no route matched (404, the host check's 421) count as `unmatched`.

The request id is the `X-Request-ID` a trusted proxy sent (nginx's `$request_id`), or a new
one; it goes back in the answer's `X-Request-ID` and into the JSON access log
(`scope["apiclub.request_id"]`). This middleware sits outside the proxy-header one, so
`scope["client"]` is still the peer when it decides whether to trust the header.
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from apiclub.ops.jsonlog import REQUEST_ID
from apiclub.server.asgi import ASGIApp, Message, Receive, Scope, Send
from apiclub.settings import ProxyNetwork, Settings

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other counts as `other` (a client picks the method)."""
if TYPE_CHECKING:
    from apiclub.ops.metrics import Metrics

REQUEST_ID_KEY = "apiclub.request_id"
UNMATCHED = "unmatched"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
"""What a kept X-Request-ID may hold: no spaces or quotes that could confuse a log reader."""


class RequestMetricsMiddleware:
    """Record each HTTP request in `metrics` (if given) and tag it with a request id."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics | None, trusted: Iterable[ProxyNetwork]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope[REQUEST_ID_KEY] = request_id
        REQUEST_ID.set(request_id)  # this request's task: its log lines carry the id
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # an app that raised before answering: Hypercorn sends a 500

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        metrics = self.metrics
        if metrics is None:
            await self.app(scope, receive, tagged_send)
            return
        began = time.perf_counter()
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, tagged_send)
        finally:
            metrics.in_flight.dec()
            route = scope.get("path_template") or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            metrics.observe_request(method, route, status, time.perf_counter() - began)

    def _request_id(self, scope: Scope) -> str:
        if self.trusted and self._peer_trusted(scope):
            for name, value in scope["headers"]:
                if name == b"x-request-id" and _VALID_ID.fullmatch(value):
                    return str(value.decode("ascii"))
        return uuid.uuid4().hex

    def _peer_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


def observe_requests(app: ASGIApp, settings: Settings, metrics: Metrics | None) -> ASGIApp:
    """`app` wrapped when metrics or JSON logs need it; `app` itself otherwise (no cost)."""
    if metrics is None and settings.log_format != "json":
        return app
    return RequestMetricsMiddleware(app, metrics, settings.trusted_proxies)
