"""Server CPU time per request: a figure that a busy machine disturbs far less than req/s.

    python -m bench.cpu [--seconds 4] [--rounds 3] [--path /task/ --tasks 10000] [--metrics] \
        -- COMMAND...

Starts COMMAND (an `apiclub serve`; free ports and a scratch data folder are handed to it in
APICLUB_HTTPS_PORT, APICLUB_HTTP_PORT and APICLUB_DATA_DIR), waits for its first verified
answer, then runs wrk for each workload (HTTPS keep-alive, a new TLS connection per request,
the port-80 redirect) and prints the CPU time (user + system, all the server's processes, from
/proc) divided by the requests wrk completed. Throughput on a shared 2-core machine swings by
2x between runs; the CPU spent per request does not depend on how much of the machine others
take.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import run_wrk
from bench.processes import free_ports, wait_verified
from bench.seed import seed_apiclub

TICKS = os.sysconf("SC_CLK_TCK")


def workloads(https: int, http: int, path: str = "/") -> dict[str, tuple[str, bool]]:
    """Name -> (URL, a new connection per request); `post-task` POSTs (see POSTS)."""
    return {
        "keep-alive": (f"https://localhost:{https}{path}", False),
        "new-connection": (f"https://localhost:{https}{path}", True),
        "redirect": (f"http://localhost:{http}/task/?page=2", False),
        "post-task": (f"https://localhost:{https}/task/", False),
    }


POSTS = {"post-task": '{"name": "bench"}'}
"""The workloads sent as POST, with their body."""


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        proc = Path(f"/proc/{current}")
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            for task in (proc / "task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the command, measure, print one line per workload: median [min-max] µs/request."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--path", default="/", help="path of the HTTPS workloads (default /)")
    parser.add_argument("--tasks", type=int, default=0, help="tasks seeded first (default 0)")
    parser.add_argument(
        "--metrics", action="store_true", help="turn the admin listener on (a free port)"
    )
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as scratch:
        data = Path(scratch)
        if args.tasks:
            seed_apiclub(data, args.tasks)
        https, http, metrics = free_ports(3)
        env = {
            **os.environ,
            "APICLUB_DATA_DIR": str(data),
            "APICLUB_HTTPS_PORT": str(https),
            "APICLUB_HTTP_PORT": str(http),
            "APICLUB_METRICS_PORT": str(metrics) if args.metrics else "0",
        }
        log = (data / "server.log").open("w")
        server = subprocess.Popen(args.command, env=env, stdout=log, stderr=log)  # noqa: S603
        try:
            wait_verified(https, data / "ca/root.pem", [server], log=data / "server.log")
            runs = workloads(https, http, args.path)
            costs: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, (url, close) in runs.items():
                    before = tree_cpu(server.pid)
                    post = POSTS.get(name)
                    sample = run_wrk(
                        url,
                        args.connections,
                        args.seconds,
                        close=close,
                        method="POST" if post else "GET",
                        body=post or "",
                    )
                    used = tree_cpu(server.pid) - before
                    costs[name].append(1e6 * used / max(sample.requests, 1))
            for name, values in costs.items():
                sys.stdout.write(
                    f"{name:15} {statistics.median(values):8.0f} µs CPU/request "
                    f"[{min(values):.0f}-{max(values):.0f}]\n"
                )
        finally:
            server.terminate()
            server.wait(30)
            log.close()
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
