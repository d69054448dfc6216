"""The plot: throughput of `GET /` against the number of connections, one line per stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt

from bench.stacks import STACKS


def plot_sweep(rows: list[dict[str, Any]], out: Path, *, workload: str = "get_root") -> None:
    """Write a PNG of median req/s (with min-max bars) against connections, log-scaled."""
    figure, axes = plt.subplots(figsize=(8, 6), dpi=120)
    for stack in STACKS:
        points = sorted(
            (row["connections"], row)
            for row in rows
            if row["workload"] == workload and row["stack"] == stack.key and row["rps_median"]
        )
        if not points:
            continue
        x = [c for c, _ in points]
        y = [row["rps_median"] for _, row in points]
        low = [row["rps_median"] - row["rps_min"] for _, row in points]
        high = [row["rps_max"] - row["rps_median"] for _, row in points]
        axes.errorbar(
            x, y, yerr=[low, high], marker="o", capsize=3, label=f"({stack.key}) {stack.label}"
        )
    sweep = sorted({row["connections"] for row in rows if row["workload"] == workload})
    axes.set_xscale("log", base=2)
    axes.set_xticks(sweep, [str(c) for c in sweep])
    axes.set_yscale("log")
    axes.set_xlabel("concurrent connections (wrk, HTTPS keep-alive)")
    axes.set_ylabel("requests per second (median, min-max)")
    axes.set_title("GET / throughput against concurrency")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
