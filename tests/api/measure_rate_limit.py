"""Print what the rate limiter costs per request, by limit size (a script, not a test).

Litestar's limiter keeps one timestamp per request in the window and decodes and re-encodes
that list on every request, so its cost grows with the limit. Run:

    .venv/bin/python -m tests.api.measure_rate_limit
"""

from __future__ import annotations

import asyncio
import time

import httpx
from litestar import Litestar, get

from apiclub.api.ratelimit import create_rate_limit, create_rate_limit_handlers
from apiclub.settings import RateLimit

REQUESTS = 1000


@get("/work")
async def work() -> str:
    return "ok"


def build(limit: RateLimit | None) -> Litestar:
    if limit is None:
        return Litestar([work], logging_config=None)
    return Litestar(
        [work],
        logging_config=None,
        middleware=[create_rate_limit(limit).middleware],
        exception_handlers=create_rate_limit_handlers(limit),
    )


async def per_request(limit: RateLimit | None, history: int) -> float:
    """Microseconds per request once `history` requests are already in the window."""
    app = build(limit)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(history):
            await client.get("/work")
        start = time.perf_counter()
        for _ in range(REQUESTS):
            response = await client.get("/work")
        elapsed = time.perf_counter() - start
    assert response.status_code == 200, response.text
    return elapsed / REQUESTS * 1e6


async def main() -> None:
    # A limit too high to reach, so every request is counted and passed; what varies is how
    # many timestamps one client already has in its window.
    never_reached = RateLimit(10**9, "hour")
    print(f"limit off: {await per_request(None, 0):6.0f} us/request")  # noqa: T201
    for history in (0, 1_000, 10_000, 30_000):
        micros = await per_request(never_reached, history)
        print(  # noqa: T201
            f"limit on, {history:>6}..{history + REQUESTS} requests in the window: "
            f"{micros:6.0f} us/request"
        )


if __name__ == "__main__":
    asyncio.run(main())
