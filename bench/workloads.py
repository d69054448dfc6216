"""What each stack is asked to do: the workloads of issue #5's table, plus HTTP/2."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from bench.load import Sample, run_h2load, run_wrk
from bench.stacks import Running

Run = Callable[[Running, int, int], Sample]
"""(stack, connections, seconds) -> the measured sample."""


def _https(running: Running, path: str) -> str:
    return f"https://localhost:{running.https_port}{path}"


def get_root(running: Running, connections: int, seconds: int) -> Sample:
    return run_wrk(_https(running, "/"), connections, seconds)


def list_tasks(running: Running, connections: int, seconds: int) -> Sample:
    return run_wrk(_https(running, "/task/"), connections, seconds)


def create_task(running: Running, connections: int, seconds: int) -> Sample:
    body = json.dumps({"name": "Benchmark the stack"})
    return run_wrk(_https(running, "/task/"), connections, seconds, method="POST", body=body)


def new_connection_each(running: Running, connections: int, seconds: int) -> Sample:
    return run_wrk(_https(running, "/"), connections, seconds, close=True)


def redirect(running: Running, connections: int, seconds: int) -> Sample:
    url = f"http://localhost:{running.http_port}/task/?page=2"
    return run_wrk(url, connections, seconds)


def http2_root(running: Running, connections: int, seconds: int) -> Sample:
    return run_h2load(_https(running, "/"), connections, seconds)


@dataclass(frozen=True)
class Workload:
    """One row of the table: a name, how to run it, and whether it is swept over concurrency."""

    key: str
    label: str
    run: Run
    sweep: bool = False


WORKLOADS = (
    Workload("get_root", "`GET /`", get_root, sweep=True),
    Workload("list_tasks", "`GET /task/` (a page of 10 rows and the total)", list_tasks),
    Workload("create_task", "`POST /task/`", create_task),
    Workload("new_connection", "`GET /`, new TLS connection per request", new_connection_each),
    Workload("redirect", "port-80 redirect (301)", redirect),
    Workload("http2", "HTTP/2 `GET /` (h2load, 4 streams per connection)", http2_root),
)
WORKLOAD_KEYS = tuple(workload.key for workload in WORKLOADS)
