"""Throughput through nginx with 1, 2 and 4 API replicas on one PostgreSQL (issue #7, part 2).

    python -m bench.replicas                        # 1, 2, 4 replicas; 10 s cells, 2 rounds
    python -m bench.replicas --seconds 3 --rounds 1 # a quick look
    python -m bench.replicas --json out.json        # also write the figures

Each shape is the compose `scale` profile on loopback: deploy/nginx's entrypoint as shipped
(TLS, upstream keep-alive) in front of N `apiclub serve --tls off` processes on one private
PostgreSQL (Debian's, started as the tests start it, tests/postgres.py, but with fsync on as
SQLite's `synchronous=FULL` is), plus a reference row with one replica on SQLite. wrk
(HTTP/1.1, keep-alive) runs `GET /task/` (a page of 10 and the total) and `POST /task/`
against nginx for `--seconds` per cell; every process, wrk included,
shares this machine's cores, so the table says what N replicas give *on one machine*, not
what N machines would. Rounds take the shapes in turn (load here drifts); medians are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.postgres import Postgres, running_postgres

from bench.load import Sample, missing_tools, run_wrk
from bench.processes import free_ports, spawn, stop, wait_verified
from bench.seed import seed_apiclub
from bench.stacks import ENTRYPOINT, REPO, base_env

REPLICAS = (1, 2, 4)
CONNECTIONS = 32
"""wrk's keep-alive connections to nginx: enough to keep 4 replicas busy."""
SEED_TASKS = 10_000
"""Tasks in the database before the first cell: the list reads a page of a real table."""
TASK_BODY = json.dumps({"name": "Benchmark the replicas"})
SEED_SQL = (
    "INSERT INTO task (name, created_at) "  # noqa: S608 (a constant, no input)
    f"SELECT 'Seeded task ' || n, now() FROM generate_series(1, {SEED_TASKS:d}) AS n"
)


@dataclass(frozen=True)
class Shape:
    """One row: how many replicas, on which database."""

    replicas: int
    database_url: str | None

    @property
    def label(self) -> str:
        if self.database_url is None:
            return "nginx -> 1 replica, SQLite (reference)"
        return f"nginx -> {self.replicas} replica{'s' * (self.replicas > 1)}, PostgreSQL"


@contextlib.contextmanager
def running_shape(shape: Shape, directory: Path) -> Iterator[int]:
    """nginx in front of the shape's replicas; nginx's HTTPS port. Everything stops after."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # nginx's workers run as www-data when started as root
    log = directory / "stack.log"
    https, http, *upstreams = free_ports(2 + shape.replicas)
    data = directory / "data"
    extra = ("--database-url", shape.database_url) if shape.database_url else ()
    processes: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for port in upstreams:
            argv = [sys.executable, "-m", "apiclub", "serve", "--data-dir", str(data)]
            argv += ["--tls", "off", "--manage-certs", "--trusted-proxy", "127.0.0.1"]
            argv += ["--domain", "localhost", "--http-port", str(port), "--log-level", "WARNING"]
            processes.append((spawn([*argv, *extra], log=log, env=base_env(), cwd=REPO), 0))
        live = data / "certs/live/{domain}"
        env = base_env(
            APICLUB_DOMAINS="localhost",
            NGINX_PREFIX=str(directory),
            NGINX_HTTPS_LISTEN=f"127.0.0.1:{https}",
            NGINX_HTTP_LISTEN=f"127.0.0.1:{http}",
            NGINX_UPSTREAM=",".join(f"127.0.0.1:{port}" for port in upstreams),
            NGINX_CERT_FILE=f"{live}/fullchain.pem",
            NGINX_KEY_FILE=f"{live}/privkey.pem",
        )
        nginx = spawn([str(ENTRYPOINT)], log=log, env=env, cwd=directory)
        processes.insert(0, (nginx, signal.SIGQUIT))
        wait_verified(https, data / "ca/root.pem", [p for p, _ in processes], log=log)
        yield https
    finally:
        for process, sig in processes:
            stop(process, sig or signal.SIGTERM)


def durable(server: Postgres) -> None:
    """Turn fsync back on: the tests' server skips it, SQLite's row pays one fsync per commit."""
    for setting in ("fsync", "full_page_writes", "synchronous_commit"):
        server.psql(f"ALTER SYSTEM SET {setting} = on")
    server.psql("SELECT pg_reload_conf()")


def seed_postgres(server: Postgres, database: str) -> None:
    """SEED_TASKS tasks in one statement (the count trigger sees them as it sees the API's)."""
    server.psql(SEED_SQL, database=database)


def measure(https: int, seconds: int) -> dict[str, Sample]:
    url = f"https://localhost:{https}/task/"
    return {
        "list": run_wrk(url, CONNECTIONS, seconds),
        "create": run_wrk(url, CONNECTIONS, seconds, method="POST", body=TASK_BODY),
    }


def table(results: dict[str, list[dict[str, Sample]]]) -> str:
    lines = [
        "| shape | `GET /task/` req/s | p99 ms | `POST /task/` req/s | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, rounds in results.items():
        cells = []
        for kind in ("list", "create"):
            samples = [cell[kind] for cell in rounds]
            cells.append(f"{statistics.median(s.rps for s in samples):,.0f}")
            cells.append(f"{statistics.median(s.p99_ms or 0.0 for s in samples):.1f}")
        errors = sum(s.errors + s.timeouts for cell in rounds for s in cell.values())
        lines.append(f"| {label} | {' | '.join(cells)} | {errors} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if missing := missing_tools():
        print(f"missing: {', '.join(missing)}", file=sys.stderr)  # noqa: T201
        return 1
    results: dict[str, list[dict[str, Sample]]] = {}
    with running_postgres() as server, tempfile.TemporaryDirectory() as scratch:
        durable(server)
        shapes = [Shape(1, None)]
        for count in args.replicas:
            name = f"replicas_{count}"
            server.create_database(name)
            shapes.append(Shape(count, server.url_for(name)))
        for number in range(args.rounds):
            for index, shape in enumerate(shapes):
                directory = Path(scratch) / f"round-{number}-{index}"
                if shape.database_url is None:
                    seed_apiclub(directory / "data", SEED_TASKS)  # a new file every round
                with running_shape(shape, directory) as https:
                    if number == 0 and shape.database_url is not None:
                        seed_postgres(server, f"replicas_{shape.replicas}")
                    cell = measure(https, args.seconds)
                results.setdefault(shape.label, []).append(cell)
                print(f"round {number + 1}: {shape.label}: done", file=sys.stderr)  # noqa: T201
    print(  # noqa: T201
        f"{os.cpu_count()} cores, {CONNECTIONS} wrk connections, {args.seconds} s per cell, "
        f"medians of {args.rounds} rounds\n\n{table(results)}"
    )
    if args.json:
        raw = {
            label: [{kind: sample.as_dict() for kind, sample in cell.items()} for cell in rounds]
            for label, rounds in results.items()
        }
        Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per cell (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument(
        "--replicas", type=lambda raw: [int(n) for n in raw.split(",")], default=list(REPLICAS)
    )
    parser.add_argument("--json", help="also write every sample to this file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
