"""Latency of the task API at 1,000 / 100,000 / 1,000,000 tasks (issue #5, part 2).

    python -m bench.scale_data                       # 1k, 100k, 1M; prints a markdown table
    python -m bench.scale_data --sizes 1000,100000   # fewer sizes
    python -m bench.scale_data --json out.json       # also write the figures

Each database is built once through the real migrations, then filled with one `executemany`
(triggers, if the schema has any, fire as they do for the API's own writes), and cached under
/tmp/apiclub-scale/<hash of the migrations>/, so the code before and after a schema change
never shares a file. Every run works on a copy, so its writes never reach the cache.

The app runs in-process (its real lifespan: engine, migrations) behind httpx's ASGI transport:
no TLS, no HTTP parsing, so the figures show what the data size costs and nothing else. Each
query runs sequentially, `--requests` times or for `--seconds`, whichever ends first, after a
warm-up, in `--rounds` rounds that take the sizes in turn (this machine's load drifts; one size
measured at a busy moment would otherwise look slower than another); p50 and p99 in
milliseconds over every round's samples. Every answer is checked (status and `total`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import piccolo_migrations

from apiclub.api import create_app
from apiclub.settings import Settings

SECONDS = 1.0
MILLISECONDS = SECONDS / 1000
SIZES = (1_000, 100_000, 1_000_000)
CACHE = Path(tempfile.gettempdir()) / "apiclub-scale"
WORDS = ("Write the tests", "Review the pull request", "Renew the certificate", "Water the plants")
WARMUP = 5
DEEP_PAGE = 5_000
PAGE_SIZE = 10

# Marker words and how many rows carry each, at every size (so sizes compare like with like).
MARKERS = {"zebra": 100, "quokka": 1_000, "zq": 100}


Samples = dict[str, tuple[list[float], list[str]]]
"""Per query label: the latencies in seconds and the problems found in answers."""


@dataclass(frozen=True)
class Query:
    """One measured request: a label, how to send it, and what its answer must hold."""

    label: str
    method: str
    path: Callable[[int, int], str]
    """The URL from (database size, request number)."""
    expected_total: Callable[[int], int | None]
    """The `total` the answer must carry at a size (None: no list answer)."""
    json_body: dict[str, str] | None = None
    unfiltered: bool = False
    """The total counts every task, so it grows with the writes of earlier rounds."""


def _marker_rows(size: int, count: int, offset: int) -> range:
    count = min(count, size)
    return range(offset % max(size // count, 1), size, max(size // count, 1))[:count]


def names(size: int) -> list[str]:
    """Task names with some variety, and each marker word in exactly its number of rows."""
    rows = [f"{WORDS[i % len(WORDS)]} #{i}" for i in range(size)]
    for offset, (marker, count) in enumerate(MARKERS.items()):
        for index in _marker_rows(size, count, offset):
            rows[index] += f" {marker}"
    return rows


def _listing(label: str, query: str) -> Query:
    """A list request whose total counts every task."""
    return Query(label, "GET", lambda n, i: f"/task/?{query}", lambda n: n, unfiltered=True)


def _search(marker: str, note: str = "") -> Query:
    """A `name=` request for a marker word; its total is the marker's row count."""
    label = f"`name={marker}` ({note}{MARKERS[marker]:,} matches) + total"
    return Query(
        label, "GET", lambda n, i: f"/task/?name={marker}", lambda n: min(MARKERS[marker], n)
    )


DEEP_OFFSET = (DEEP_PAGE - 1) * PAGE_SIZE
QUERIES = (
    _listing("`GET /task/?page=1` + total", "page=1"),
    _search("zebra"),
    _search("quokka"),
    _search("zq", "2 characters, "),
    Query("`GET /task/{id}`", "GET", lambda n, i: f"/task/{1 + (i * 7919) % n}", lambda n: None),
    Query(
        "`POST /task/` (a write)", "POST", lambda n, i: "/task/", lambda n: None, {"name": "new"}
    ),
    _listing(f"`page={DEEP_PAGE}` (offset {DEEP_OFFSET:,})", f"page={DEEP_PAGE}"),
    _listing(f"`after_id={DEEP_OFFSET}` (the same page by cursor)", f"after_id={DEEP_OFFSET}"),
)


def schema_key() -> str:
    """A short hash of the migrations: a schema change gets its own cached files."""
    folder = Path(piccolo_migrations.__file__).parent
    digest = hashlib.sha256()
    for migration in sorted(folder.glob("*.py")):
        digest.update(migration.read_bytes())
    return digest.hexdigest()[:12]


def build(size: int, cache: Path) -> tuple[Path, float]:
    """The cached database of `size` tasks, built now if missing; and the build's seconds."""
    target = cache / schema_key() / f"tasks-{size}.db"
    if target.exists():
        return target, 0.0
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="apiclub-scale-build-") as work:
        # `apiclub migrate` in its own process: its connections are closed when it exits.
        subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "apiclub", "migrate", "--data-dir", work],
            check=True,
            capture_output=True,
            timeout=120,
        )
        built = Path(work) / "api.db"
        created_at = str(datetime.now(UTC))  # Piccolo's Timestamptz text on SQLite
        with closing(sqlite3.connect(built)) as conn:
            with conn:
                conn.executemany(
                    "INSERT INTO task (name, created_at) VALUES (?, ?)",
                    ((name, created_at) for name in names(size)),
                )
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.move(built, target.with_suffix(".partial"))
    target.with_suffix(".partial").rename(target)  # a build cut short is never reused
    return target, time.perf_counter() - started


async def measure(copy: Path, size: int, args: argparse.Namespace, into: Samples) -> None:
    """One round of every query against `copy` (a file of `size` tasks plus earlier writes)."""
    app = create_app(Settings(data_dir=copy.parent, db_file=copy))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for query in QUERIES:
                samples, failures = into.setdefault(query.label, ([], []))
                await _measure_one(client, query, size, args, samples, failures)


async def _measure_one(
    client: httpx.AsyncClient,
    query: Query,
    size: int,
    args: argparse.Namespace,
    samples: list[float],
    failures: list[str],
) -> None:
    count = await _total(client)
    extra = count - size  # tasks written by earlier rounds: ids above `size`
    deadline = time.perf_counter() + args.seconds
    for number in range(WARMUP + args.requests):
        started = time.perf_counter()
        response = await client.request(
            query.method, query.path(size, number), json=query.json_body
        )
        elapsed = time.perf_counter() - started
        extra += response.status_code == 201
        problem = _check(query, response, size, extra)
        if problem is not None:
            failures.append(problem)
        if number >= WARMUP:
            samples.append(elapsed)
            if time.perf_counter() > deadline:
                break


async def _total(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/task/?page_size=1")).json()["total"]
    return total


def _check(query: Query, response: httpx.Response, size: int, extra: int) -> str | None:
    wanted = 201 if query.method == "POST" else 200
    if response.status_code != wanted:
        return f"{response.status_code} {response.text[:200]}"
    expected = query.expected_total(size)
    if expected is not None and query.unfiltered:
        expected += extra  # the unfiltered total counts the writes of earlier rounds
    if expected is not None and response.json()["total"] != expected:
        return f"total {response.json()['total']}, expected {expected}"
    if "after_id=" in str(response.request.url):
        after = int(str(response.request.url).rsplit("=", 1)[1])
        ids = [task["id"] for task in response.json()["tasks"]]
        if ids[:1] != ([after + 1] if after < size + extra else []):
            return "not supported (the page starts at id 1)"
    return None


def summarize(into: Samples) -> dict[str, dict[str, Any]]:
    """p50 and p99 in milliseconds, the sample count and the failures, per query."""
    figures = {}
    for label, (samples, failures) in into.items():
        ordered = sorted(samples)
        figures[label] = {
            "p50_ms": statistics.median(ordered) / MILLISECONDS,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / MILLISECONDS,
            "samples": len(ordered),
            "failures": len(failures),
            "first_failure": failures[0] if failures else None,
        }
    return figures


def table(results: dict[int, dict[str, dict[str, Any]]], sizes: list[int]) -> str:
    """The markdown table: p50 / p99 per size, and the largest size's p50 over the smallest's."""
    head = ["query", *(f"{size:,} p50 / p99 ms" for size in sizes)]
    if len(sizes) > 1:
        head.append(f"p50 {sizes[-1]:,} / {sizes[0]:,}")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for query in QUERIES:
        cells = [query.label]
        for size in sizes:
            figure = results[size][query.label]
            cell = f"{figure['p50_ms']:.2f} / {figure['p99_ms']:.2f}"
            if figure["failures"]:
                cell = f"{figure['failures']} wrong: {figure['first_failure']}"
            cells.append(cell)
        if len(sizes) > 1:
            first, last = results[sizes[0]][query.label], results[sizes[-1]][query.label]
            cells.append(f"{last['p50_ms'] / first['p50_ms']:.1f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the databases, measure every query at every size, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale_data", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the sizes (3)")
    parser.add_argument("--requests", type=int, default=100, help="per query and round (100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per query and round, at most")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    samples: dict[int, Samples] = {size: {} for size in sizes}
    with tempfile.TemporaryDirectory(prefix="apiclub-scale-") as work:
        copies = {}
        for size in sizes:
            path, seconds = build(size, args.cache)
            built = f"built in {seconds:.1f} s" if seconds else "cached"
            megabytes = path.stat().st_size / 1e6
            sys.stderr.write(f"{size:,} tasks: {path} ({megabytes:.0f} MB, {built})\n")
            copies[size] = Path(work) / str(size) / "api.db"
            copies[size].parent.mkdir()
            shutil.copyfile(path, copies[size])
        for number in range(args.rounds):
            for size in sizes:
                sys.stderr.write(f"round {number + 1} of {args.rounds}: {size:,} tasks\n")
                asyncio.run(measure(copies[size], size, args, samples[size]))
    results = {size: summarize(samples[size]) for size in sizes}
    sys.stdout.write(table(results, sizes) + "\n")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return 1 if any(f["failures"] for r in results.values() for f in r.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
