"""Print what 500 slow-drip connections do to a server whose open-file limit is 256 (a script).

The attack of `test_fd_exhaustion.py`: POSTs whose body comes a byte a second, half on each
port, against a real `apiclub serve`; then 20 HTTPS `GET /` on new connections and one
port-80 GET. Printed: how many normal requests were answered (and how long they took), and how
many lines the server logged, warnings and tracebacks among them. Run:

    .venv/bin/python -m tests.reliability.measure_fd_exhaustion
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from pathlib import Path

import httpx

from tests.reliability.test_fd_exhaustion import (
    DRIPPERS,
    FD_LIMIT,
    NORMAL_REQUESTS,
    limited_server,
    start_drippers,
)


async def normal_requests(context: ssl.SSLContext, https_port: int, http_port: int) -> list[str]:
    outcomes = []
    async with httpx.AsyncClient(verify=context, timeout=5) as client:
        for _ in range(NORMAL_REQUESTS):
            try:
                url = f"https://localhost:{https_port}/"
                response = await client.get(url, headers={"connection": "close"})
                outcomes.append(str(response.status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
        try:
            url = f"http://127.0.0.1:{http_port}/"
            outcomes.append(str((await client.get(url, headers={"host": "localhost"})).status_code))
        except httpx.HTTPError as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


async def main() -> None:
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryFile("w+") as log:
        with limited_server(Path(data), log) as (https_port, http_port):
            context = ssl.create_default_context(cafile=Path(data) / "ca/root.pem")
            stop = asyncio.Event()
            drippers = start_drippers(https_port, http_port, context, stop)
            await asyncio.sleep(3)
            start = time.monotonic()
            outcomes = await normal_requests(context, https_port, http_port)
            seconds = time.monotonic() - start
            stop.set()
            await asyncio.wait_for(asyncio.gather(*drippers), 60)
        log.seek(0)
        lines = log.read().splitlines()
    served = sum(outcome in ("200", "301") for outcome in outcomes)
    print(f"{DRIPPERS} slow drips, open-file limit {FD_LIMIT}")  # noqa: T201
    print(  # noqa: T201
        f"normal requests answered: {served}/{len(outcomes)} in {seconds:.2f} s "
        f"({', '.join(sorted(set(outcomes)))})"
    )
    warnings = [line for line in lines if " WARNING " in line or " ERROR " in line]
    tracebacks = sum("Traceback" in line for line in lines)
    print(  # noqa: T201
        f"log: {len(lines)} lines, {len(warnings)} warnings/errors, {tracebacks} tracebacks"
    )
    for line in warnings[:5]:
        print("  " + line)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
