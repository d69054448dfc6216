"""Load generators: wrk (HTTP/1.1) and h2load (HTTP/2), run for a bounded time, parsed.

Both are Debian packages (`wrk`, `nghttp2-client`): C programs that keep up with nginx on the
same machine, which a Python client could not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SECONDS = 1.0
REQUEST_TIMEOUT = 2 * SECONDS
"""A request slower than this counts as a timeout (the issue's "> 2 s timeouts")."""
GRACE = 30 * SECONDS
"""How long past its duration a load tool may run before it is killed."""
THREADS = 2
"""Load threads: one per core of the 2-core machines this runs on (and never above C)."""
H2_STREAMS = 4
"""Concurrent HTTP/2 streams per connection in the HTTP/2 workload."""
LUA = Path(__file__).resolve().parent / "wrk" / "report.lua"
TOOLS = {"wrk": "wrk (Debian package wrk)", "h2load": "h2load (Debian package nghttp2-client)"}


@dataclass(frozen=True)
class Sample:
    """One measured run: what was sent, what came back, how fast."""

    requests: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    """Requests that failed: connect, read or write errors, and answers other than 2xx/3xx."""
    timeouts: int
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_tools() -> list[str]:
    """The load tools not on PATH, as the packages to install."""
    return [package for tool, package in TOOLS.items() if shutil.which(tool) is None]


def run_wrk(
    url: str,
    connections: int,
    seconds: int,
    *,
    method: str = "GET",
    body: str = "",
    close: bool = False,
) -> Sample:
    """`wrk` for `seconds` with `connections` keep-alive connections (or one per request)."""
    argv = ["wrk", "-t", str(min(THREADS, connections)), "-c", str(connections)]
    argv += ["-d", f"{seconds}s", "--timeout", f"{REQUEST_TIMEOUT:g}s", "-s", str(LUA), url]
    if close:
        argv += ["-H", "Connection: close"]
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body}
    output = _run(argv, seconds, env)
    match = re.search(r"^BENCH_JSON (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result: {output[-2000:]}")
    result = json.loads(match.group(1))
    failed = sum(result[key] for key in ("connect", "read", "write", "status"))
    return Sample(
        requests=result["requests"],
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=failed,
        timeouts=result["timeout"],
        detail=result,
    )


def run_h2load(url: str, connections: int, seconds: int) -> Sample:
    """`h2load` for `seconds`: `connections` HTTP/2 connections of H2_STREAMS streams each."""
    argv = ["h2load", "-t", str(min(THREADS, connections)), "-c", str(connections)]
    argv += ["-m", str(H2_STREAMS), "-D", str(seconds), "-T", f"{REQUEST_TIMEOUT:g}", url]
    output = _run(argv, seconds, dict(os.environ))
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    rate = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", output)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", output)
    if counts is None or codes is None or rate is None:
        raise RuntimeError(f"h2load printed no result: {output[-2000:]}")
    total, _, done, succeeded, failed, errored, timeout = map(int, counts.groups())
    bad_status = int(codes.group(3)) + int(codes.group(4))
    # At the end of a timed run h2load abandons the streams in flight and counts them as failed
    # (nghttp2 issue #1523): up to one per stream slot is the tool stopping, not the server.
    abandoned = min(failed - timeout, connections * H2_STREAMS)
    return Sample(
        requests=done,
        rps=float(rate.group(3)),
        # h2load reports no percentiles: its mean stands in for the median.
        p50_ms=_to_ms(float(mean.group(1)), mean.group(2)) if mean else None,
        p99_ms=None,
        errors=failed - timeout - abandoned + bad_status,
        timeouts=timeout,
        detail={
            "total": total,
            "succeeded": succeeded,
            "failed": failed,
            "errored": errored,
            "abandoned_at_stop": abandoned,
        },
    )


def _to_ms(value: float, unit: str) -> float:
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _run(argv: list[str], seconds: int, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 (fixed tools, arguments built here)
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + GRACE,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout
