"""Print what the issue-14 filter attack costs: time per answer and memory after (a script).

1,000 tasks named `a` x 200 (anyone can create them); then `GET /task/?name=` + `a` x 8,000
(refused with 400 before any database work), the longest allowed filter (200 characters, all
one trigram) and an ordinary 3-letter filter, each alone and five at once, through the real
app on a real SQLite file. Memory is the process's resident set now (not its peak), before and
after. Run:

    .venv/bin/python -m tests.reliability.measure_long_filter
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from apiclub.api import create_app
from apiclub.db import bound_engine
from apiclub.db.tables import NAME_MAX_LENGTH, Task
from apiclub.settings import Settings

TASKS = 1000
FILTERS = {
    "8,000 x a (over the limit)": "a" * 8000,
    f"{NAME_MAX_LENGTH} x a (longest allowed)": "a" * NAME_MAX_LENGTH,
    "199 x a + b (no match)": "a" * (NAME_MAX_LENGTH - 1) + "b",
    "ordinary: aaa": "aaa",
}


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def timed(client: httpx.AsyncClient, name: str, parallel: int) -> tuple[float, set[int]]:
    start = time.perf_counter()
    answers = await asyncio.gather(
        *(client.get("/task/", params={"name": name}) for _ in range(parallel))
    )
    return (time.perf_counter() - start) * 1000, {a.status_code for a in answers}


async def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings(data_dir=Path(data) / "data"))
        async with app.lifespan():
            await bound_engine().write(
                Task.insert(*(Task(name="a" * NAME_MAX_LENGTH) for _ in range(TASKS)))
            )
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                await timed(client, "aaa", 1)  # warm the caches
                baseline = rss_mib()
                print(f"{TASKS} tasks named a x {NAME_MAX_LENGTH}; RSS {baseline:.1f} MiB")  # noqa: T201
                for label, name in FILTERS.items():
                    alone, status = await timed(client, name, 1)
                    five, _ = await timed(client, name, 5)
                    print(  # noqa: T201
                        f"{label:28} status {sorted(status)}  alone {alone:7.1f} ms  "
                        f"five at once {five:7.1f} ms  RSS {rss_mib() - baseline:+.1f} MiB"
                    )


if __name__ == "__main__":
    asyncio.run(main())
