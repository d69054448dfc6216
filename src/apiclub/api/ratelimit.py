"""An optional limit on requests per client address, on Litestar's `RateLimitMiddleware`.

The key is `scope["client"]`, read by Litestar's `get_remote_address`. The server's proxy
headers middleware runs before the app and replaces that address with the forwarded one only
when the peer is a trusted proxy, so a client that sends its own X-Forwarded-For is still
counted under its real address. Counters live in this process's memory: each replica behind a
load balancer counts on its own, and a restart forgets them. Litestar keeps one timestamp per
request in the window and re-reads them all on each request, so a large REQUESTS costs: about
0.14 ms more per request under 1000 in the window, 1.5 ms more at 10,000 (measured by
`tests/api/measure_rate_limit.py`; keep REQUESTS in the hundreds, with a shorter UNIT).

What Litestar does not do, done here: a `Retry-After` and a JSON body saying what the limit is
on the 429 (RFC 6585 4); one lock for all routes (Litestar 2.25 builds one middleware per route
handler, each with its own lock from litestar#4681, so parallel requests to several routes race
on one counter: 40 of them over 3 routes under `5/minute` let 9 through); and dropping counters
of addresses gone quiet (its memory store forgets a key only when that key is read again, so
one-off addresses would pile up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from litestar import MediaType, Request, Response
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
)
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, ExceptionHandlersMap

from apiclub.settings import RateLimit

EXEMPT_PATHS = ("^/$", "^/schema(/|$)")
"""Never limited: `/` is the health check (the container's HEALTHCHECK, load balancers), which a
low daily limit would otherwise turn into "server down"; `/schema` is the static OpenAPI
document. Neither touches the database, which is what the limit protects."""
RESET_HEADER = "RateLimit-Reset"


@dataclass
class ApiRateLimitConfig(RateLimitConfig):
    """Litestar's config plus the one lock every route's middleware shares."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)


class SharedLockRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's middleware with a lock shared by all routes and a sweep of stale counters."""

    def __init__(self, app: ASGIApp, config: RateLimitConfig) -> None:
        super().__init__(app, config)
        if isinstance(config, ApiRateLimitConfig):
            self._lock = config.lock
        self._next_sweep = 0.0

    async def set_cached_history(self, key: str, cache_object: CacheObject, store: Store) -> None:
        """Record the request; once per window, drop the counters whose window has ended."""
        await super().set_cached_history(key, cache_object, store)
        now = time.monotonic()
        if now >= self._next_sweep and isinstance(store, MemoryStore):
            self._next_sweep = now + DURATION_VALUES[self.unit]
            await store.delete_expired()


def create_rate_limit(limit: RateLimit) -> ApiRateLimitConfig:
    """The config for `Litestar(middleware=[config.middleware])`."""
    return ApiRateLimitConfig(
        rate_limit=(limit.unit, limit.requests),  # type: ignore[arg-type]  # checked in settings
        exclude=list(EXEMPT_PATHS),
        middleware_class=SharedLockRateLimitMiddleware,
    )


def create_rate_limit_handlers(limit: RateLimit) -> ExceptionHandlersMap:
    """The 429 handler: JSON like every other error, with `Retry-After` (RFC 9110 10.2.3)."""

    def reject(request: Request[Any, Any, Any], exc: TooManyRequestsException) -> Response[Any]:
        headers = dict(exc.headers or {})
        # Litestar's RateLimit-Reset is the seconds left in this client's window.
        retry_after = max(1, int(headers.get(RESET_HEADER, limit.window)))
        headers["Retry-After"] = str(retry_after)
        client = request.client.host if request.client else "this client"
        detail = (
            f"too many requests from {client}: at most {limit.requests} per {limit.unit}, "
            f"retry in {retry_after} s"
        )
        extra = {"limit": str(limit), "retry_after": retry_after}
        return Response(
            content={"status_code": HTTP_429_TOO_MANY_REQUESTS, "detail": detail, "extra": extra},
            status_code=HTTP_429_TOO_MANY_REQUESTS,
            headers=headers,
            media_type=MediaType.JSON,
        )

    return {TooManyRequestsException: reject}
