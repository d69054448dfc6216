"""From raw runs to what people read: medians, ranges, ratios to (a), and the --check verdict."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from bench.stacks import STACKS
from bench.workloads import WORKLOAD_KEYS, WORKLOADS

BASELINE = "a"
MIB = 1024 * 1024


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (workload, connections, stack): median and range of req/s, latency, errors."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in results["runs"]:
        groups[(run["workload"], run["connections"], run["stack"])].append(run)
    rows = []
    for (workload, connections, stack), runs in groups.items():
        good = [run for run in runs if "failed" not in run]
        rps = [run["rps"] for run in good]
        rows.append(
            {
                "workload": workload,
                "connections": connections,
                "stack": stack,
                "rounds": len(runs),
                "rps_median": statistics.median(rps) if rps else None,
                "rps_min": min(rps, default=None),
                "rps_max": max(rps, default=None),
                "p50_ms": _median(run["p50_ms"] for run in good),
                "p99_ms": _median(run["p99_ms"] for run in good),
                "errors": sum(run["errors"] for run in good),
                "timeouts": sum(run["timeouts"] for run in good),
                "failed_runs": len(runs) - len(good),
            }
        )
    baseline = {
        (row["workload"], row["connections"]): row["rps_median"]
        for row in rows
        if row["stack"] == BASELINE
    }
    for row in rows:
        base = baseline.get((row["workload"], row["connections"]))
        row["ratio"] = row["rps_median"] / base if base and row["rps_median"] else None
    return rows


def problems(
    results: dict[str, Any],
    stacks: tuple[str, ...],
    workloads: tuple[str, ...] = WORKLOAD_KEYS,
) -> list[str]:
    """What --check refuses: a stack or workload that did not run, any failed request."""
    found = list(results["failures"])
    ran = {(run["stack"], run["workload"]) for run in results["runs"] if run.get("requests")}
    for stack in stacks:
        found += [
            f"{stack} {key}: no completed run" for key in workloads if (stack, key) not in ran
        ]
        if not results["cold_start"].get(stack):
            found.append(f"{stack}: no cold start measured")
    for run in results["runs"]:
        if run.get("errors") or run.get("timeouts"):
            found.append(
                f"{run['stack']} {run['workload']} c={run['connections']}: "
                f"{run['errors']} failed requests, {run['timeouts']} timeouts ({run['detail']})"
            )
    return found


def markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The report's tables: throughput, latency, errors, cold start and memory."""
    keys = [stack.key for stack in STACKS if stack.key in {row["stack"] for row in rows}]
    labels = {stack.key: stack for stack in STACKS}
    index = {(row["workload"], row["connections"], row["stack"]): row for row in rows}
    steps = sorted(
        {(row["workload"], row["connections"]) for row in rows},
        key=lambda step: ([w.key for w in WORKLOADS].index(step[0]), step[1]),
    )
    names = {w.key: w.label for w in WORKLOADS}
    header = "| workload | conns | " + " | ".join(f"({k})" for k in keys) + " |"
    rule = "| --- | ---: | " + " | ".join("---:" for _ in keys) + " |"
    lines = ["| stack | what | certificate |", "| --- | --- | --- |"]
    lines += [f"| ({k}) | {labels[k].label} | {labels[k].cert} |" for k in keys]
    lines += ["", "Requests per second: median [min-max] over the rounds, (ratio to (a)).", ""]
    lines += [header, rule]
    for workload, connections in steps:
        cells = [_throughput(index.get((workload, connections, k))) for k in keys]
        lines.append(f"| {names[workload]} | {connections} | " + " | ".join(cells) + " |")
    lines += ["", "Latency p50 / p99 in ms (medians over the rounds; h2load: mean, no p99).", ""]
    lines += [header, rule]
    for workload, connections in steps:
        cells = [_latency(index.get((workload, connections, k))) for k in keys]
        lines.append(f"| {names[workload]} | {connections} | " + " | ".join(cells) + " |")
    lines += ["", "Failed requests (errors and non-2xx/3xx) / timeouts (> 2 s), all rounds.", ""]
    lines += [header, rule]
    for workload, connections in steps:
        cells = [_errors(index.get((workload, connections, k))) for k in keys]
        lines.append(f"| {names[workload]} | {connections} | " + " | ".join(cells) + " |")
    lines += ["", "| measure | " + " | ".join(f"({k})" for k in keys) + " |"]
    lines.append("| --- | " + " | ".join("---:" for _ in keys) + " |")
    lines.append("| cold start to first verified HTTPS answer, s | " + _cold(results, keys) + " |")
    lines.append("| peak RSS of all the stack's processes, MiB | " + _rss(results, keys) + " |")
    return "\n".join(lines) + "\n"


def _median(values: Any) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _throughput(row: dict[str, Any] | None) -> str:
    if row is None or row["rps_median"] is None:
        return "—"
    ratio = f" ({row['ratio']:.2f}x)" if row["ratio"] is not None else ""
    spread = f" [{row['rps_min']:,.0f}-{row['rps_max']:,.0f}]" if row["rounds"] > 1 else ""
    return f"{row['rps_median']:,.0f}{spread}{ratio}"


def _latency(row: dict[str, Any] | None) -> str:
    if row is None or row["p50_ms"] is None:
        return "—"
    p99 = f"{row['p99_ms']:.1f}" if row["p99_ms"] is not None else "—"
    return f"{row['p50_ms']:.1f} / {p99}"


def _errors(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    failed = f" ({row['failed_runs']} runs failed)" if row["failed_runs"] else ""
    return f"{row['errors']} / {row['timeouts']}{failed}"


def _cold(results: dict[str, Any], keys: list[str]) -> str:
    times = {key: results["cold_start"].get(key) or [] for key in keys}
    base = statistics.median(times[BASELINE]) if times.get(BASELINE) else None
    cells = []
    for key in keys:
        if not times[key]:
            cells.append("—")
            continue
        median = statistics.median(times[key])
        ratio = f" ({median / base:.2f}x)" if base else ""
        cells.append(f"{median:.2f} [{min(times[key]):.2f}-{max(times[key]):.2f}]{ratio}")
    return " | ".join(cells)


def _rss(results: dict[str, Any], keys: list[str]) -> str:
    peaks = results["peak_rss"]
    base = peaks.get(BASELINE)
    cells = []
    for key in keys:
        peak = peaks.get(key)
        ratio = f" ({peak / base:.2f}x)" if peak and base else ""
        cells.append(f"{peak / MIB:.0f}{ratio}" if peak else "—")
    return " | ".join(cells)
