"""An optional limit on requests per client address, on Litestar's `RateLimitMiddleware`.

The key is `scope["client"]`, read by Litestar's `get_remote_address`. The server's proxy
headers middleware runs before the app and replaces that address with the forwarded one only
when the peer is a trusted proxy, so a client that sends its own X-Forwarded-For is still
counted under its real address. Counters live in this process's memory: each replica behind a
load balancer counts on its own, and a restart forgets them. Litestar keeps one timestamp per
request in the window and re-reads them all on each request, so a large REQUESTS costs time on
every request, growing with it (docs/reliability.md has the figures; keep REQUESTS in the
hundreds, with a shorter UNIT).

What Litestar does not do, done here: a `Retry-After` and a JSON body saying what the limit is
on the 429 (RFC 6585 4); one lock for all routes (Litestar 2.25 builds one middleware per route
handler, each with its own lock from litestar#4681, so parallel requests to several routes race
on one counter and more get through than the limit); and dropping counters
of addresses gone quiet (its memory store forgets a key only when that key is read again, so
one-off addresses would pile up).

`FailureLimiter` counts something Litestar's middleware cannot see: failed bearer-token attempts
(`api/auth.py` reports them). It is always on when tokens are, whether or not APICLUB_RATE_LIMIT
is set, and keyed on the same proxy-resolved address.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, TooManyRequestsException
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


AUTH_FAILURE_LIMIT = RateLimit(10, "minute")
"""Failed token attempts one client address may make in a sliding minute; the next request that
needs a token gets 429 until the oldest failure leaves the window. A token is 256 random bits,
so the limit is not what stops guessing: it bounds the work and the log lines a guesser costs."""


class TokenAttemptsExceeded(HTTPException):
    """429 for an address past `AUTH_FAILURE_LIMIT`; answered as JSON by `api/errors.py`.

    Not a `TooManyRequestsException`: that one's handler words the general limit."""

    status_code = HTTP_429_TOO_MANY_REQUESTS


class FailureLimiter:
    """Failed attempts per client address in a sliding window, and who must wait.

    Memory: at most `limit.requests` timestamps per address, and addresses whose last failure
    left the window are dropped once per window (like the request limiter's sweep).
    """

    def __init__(
        self, limit: RateLimit = AUTH_FAILURE_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def check(self, address: str) -> None:
        """Let `address` try, or raise `TokenAttemptsExceeded` saying when it may again."""
        times = self._failures.get(address)
        if times is None:
            return
        now = self._clock()
        while times and times[0] <= now - self.limit.window:
            times.popleft()
        if len(times) < self.limit.requests:
            return
        retry_after = max(1, math.ceil(times[0] + self.limit.window - now))
        raise TokenAttemptsExceeded(
            detail=(
                f"too many failed token attempts from {address}: at most {self.limit.requests} "
                f"per {self.limit.unit}, retry in {retry_after} s with a valid token"
            ),
            extra={"limit": str(self.limit), "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    def record_failure(self, address: str) -> None:
        """Count one failed attempt from `address`."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self.limit.window
            cutoff = now - self.limit.window
            self._failures = {a: t for a, t in self._failures.items() if t and t[-1] > cutoff}
        times = self._failures.setdefault(address, deque(maxlen=self.limit.requests))
        times.append(now)
