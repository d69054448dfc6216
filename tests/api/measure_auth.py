"""Print what bearer tokens cost a request, and how soon a revocation reaches a running server.

A script, not a test (figures vary with the machine). Run:

    .venv/bin/python -m tests.api.measure_auth
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from apiclub.api import create_app
from apiclub.settings import AuthMode, Settings
from apiclub.tokens import LiveTokens, TokenStore
from tests.processes import run_apiclub, served

REQUESTS = 1000
VERIFIES = 20_000
REVOCATIONS = 5
ROUNDS = 5


def verify_micros(tokens: int) -> float:
    """Microseconds per `LiveTokens.verify` of a right token among `tokens` stored."""
    with tempfile.TemporaryDirectory() as directory:
        store = TokenStore(Path(directory))
        for number in range(tokens - 1):
            store.add(f"t{number}")
        token = store.add("last")
        live = LiveTokens(store)
        live.load()
        start = time.perf_counter()
        for _ in range(VERIFIES):
            live.verify(token)
        return (time.perf_counter() - start) / VERIFIES * 1e6


async def request_micros(mode: AuthMode, method: str) -> float:
    """Microseconds per request through the app (ASGI, no sockets), in `mode`."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), auth=mode)
        token = TokenStore(settings.data_dir).add("ci")
        headers = {"authorization": f"Bearer {token}"}
        app = create_app(settings)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.post("/task/", json={"name": "seed"}, headers=headers)
                start = time.perf_counter()
                for _ in range(REQUESTS):
                    if method == "GET":
                        response = await client.get("/task/1", headers=headers)
                    else:
                        response = await client.put(
                            "/task/1", json={"name": "renamed"}, headers=headers
                        )
                elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text
        return elapsed / REQUESTS * 1e6


def revocation_seconds() -> list[float]:
    """Seconds from `apiclub tokens revoke` exiting to the first 401, on a real server."""
    delays = []
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory)
        with served(data, "--auth", "writes") as server:
            context = ssl.create_default_context(cafile=str(server.root))
            with httpx.Client(base_url=server.url, verify=context, timeout=10) as client:
                for attempt in range(REVOCATIONS):
                    name = f"r{attempt}"
                    token = run_apiclub("tokens", "add", name, data_dir=data).stdout.strip()
                    headers = {"authorization": f"Bearer {token}"}
                    time.sleep(1.2)  # let the server see the new token first
                    assert client.delete("/task/999999", headers=headers).status_code == 404
                    revoked = run_apiclub("tokens", "revoke", name, data_dir=data)
                    assert revoked.returncode == 0, revoked.stderr
                    done = time.monotonic()
                    while client.delete("/task/999999", headers=headers).status_code != 401:
                        time.sleep(0.01)
                    delays.append(time.monotonic() - done)
    return delays


async def main() -> None:
    for tokens in (1, 10, 100):
        print(f"verify, right token among {tokens:>3}: {verify_micros(tokens):6.1f} us")  # noqa: T201
    for method in ("GET", "PUT"):
        # Interleaved rounds, medians: a shared machine's noise is larger than the difference.
        rounds = [
            (await request_micros(AuthMode.OFF, method), await request_micros(AuthMode.ALL, method))
            for _ in range(ROUNDS)
        ]
        off = statistics.median(r[0] for r in rounds)
        on = statistics.median(r[1] for r in rounds)
        print(  # noqa: T201
            f"{method} /task/1 through the app, median of {ROUNDS}: off {off:6.0f} us, "
            f"all (token checked) {on:6.0f} us (ratio {on / off:.2f})"
        )
    delays = revocation_seconds()
    print(  # noqa: T201
        f"revoke -> first 401 on a running server, {len(delays)} times: "
        f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
