"""`python -m bench`: run the side-by-side benchmark and write the table, the JSON and the plot.

    python -m bench            full run (3 rounds of 5 s, GET / at 1..512 connections)
    python -m bench --quick    a smoke run, under two minutes
    python -m bench --check    exit 1 unless every stack ran and no request failed

Everything stays on 127.0.0.1 and every load run is bounded in time. Needs Debian's nginx, wrk
and h2load (packages nginx, wrk, nghttp2-client) and the `bench` extra (`make bench`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench.load import missing_tools
from bench.meta import describe
from bench.plot import plot_sweep
from bench.report import markdown, problems, summarize
from bench.run import Plan, benchmark, progress
from bench.stacks import NGINX, STACKS
from bench.workloads import WORKLOAD_KEYS, WORKLOADS

RESULTS = Path(__file__).resolve().parent / "results"
SWEEP = (1, 8, 32, 128, 512)
QUICK_SWEEP = (8, 128)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, write the outputs; the exit status is --check's verdict."""
    args = _parser().parse_args(argv)
    missing = missing_tools() + ([] if Path(NGINX).exists() else ["nginx (Debian package)"])
    if missing:
        sys.stderr.write(f"bench: error: missing {', '.join(missing)}: apt-get install them\n")
        return 2
    plan = Plan(
        rounds=args.rounds or (1 if args.quick else 3),
        seconds=args.duration or (1 if args.quick else 5),
        connections=args.connections,
        sweep=tuple(args.concurrency or (QUICK_SWEEP if args.quick else SWEEP)),
        warm_up=0 if args.quick else 2,
        tasks=args.tasks,
        keep=args.keep,
        workloads=tuple(args.workloads or WORKLOAD_KEYS),
    )
    # (a) is every ratio's baseline, so it always runs.
    stacks = [s for s in STACKS if s.key == "a" or s.key in (args.stacks or [s.key])]
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    results = {"meta": {**describe(command), "plan": plan.__dict__}, **benchmark(plan, stacks)}
    rows = summarize(results)
    results["summary"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, rows)
    (args.out / "results.md").write_text(table)
    plot_sweep(rows, args.out / "throughput.png")
    sys.stdout.write(table)
    progress(f"wrote {args.out}/results.json, results.md, throughput.png")
    if args.check:
        found = problems(results, tuple(stack.key for stack in stacks), plan.workloads)
        for problem in found:
            sys.stderr.write(f"bench: check failed: {problem}\n")
        return 1 if found else 0
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 2 sweep points")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless every stack ran without failures"
    )
    parser.add_argument("--rounds", type=_positive, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=_positive, help="seconds per run (default 5)")
    parser.add_argument(
        "--connections", type=_positive, default=32, help="connections of the table's workloads"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        nargs="+",
        help=f"connections swept for GET / (default {' '.join(map(str, SWEEP))})",
    )
    parser.add_argument(
        "--stacks",
        nargs="+",
        choices=[stack.key for stack in STACKS],
        help="stacks to run (default all; (a), the baseline, always runs)",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=[workload.key for workload in WORKLOADS],
        help="workloads to run (default all)",
    )
    parser.add_argument("--tasks", type=_positive, default=10_000, help="tasks seeded")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"output folder ({RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    return parser


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive whole number")
    return value


if __name__ == "__main__":
    sys.exit(main())
