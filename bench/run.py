"""The benchmark's course: start every stack, interleave the rounds, then time cold starts.

Load first, so that each stack's first start (a new local CA, certificates) happens outside the
timed cold starts, which then measure a restart on a prepared data directory, as an operator's
deploy or reboot does.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.stacks import STACKS, Running, Stack
from bench.workloads import WORKLOAD_KEYS, WORKLOADS, Workload
from bench.workspace import Workspace, create_workspace

T = TypeVar("T")
SECONDS = 1.0
RSS_INTERVAL = 0.25 * SECONDS
WARM_UP_CONNECTIONS = 8


@dataclass(frozen=True)
class Plan:
    """How long and how often: the command line's choices."""

    rounds: int
    seconds: int
    connections: int
    """Connections of the workloads that are not swept (the issue's table uses 32)."""
    sweep: tuple[int, ...]
    """Connections for the swept workload (`GET /`), for the plot."""
    warm_up: int
    tasks: int
    keep: bool = False
    workloads: tuple[str, ...] = WORKLOAD_KEYS
    """Keys of the workloads to run (`--workloads`); cold start and peak RSS always run."""


def progress(message: str) -> None:
    """One line on stderr: long runs say where they are."""
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def benchmark(plan: Plan, stacks: Sequence[Stack] = STACKS) -> dict[str, Any]:
    """Run the whole benchmark and return the raw results (runs, cold starts, peak RSS)."""
    began = time.monotonic()
    progress(f"seeding {plan.tasks} tasks, making an RSA-2048 certificate")
    workspace = create_workspace(plan.tasks)
    try:
        runs, peaks, failures = _load_phase(workspace, plan, stacks)
        cold = _cold_starts(workspace, plan, stacks, failures)
    finally:
        if not plan.keep:
            shutil.rmtree(workspace.root, ignore_errors=True)
    progress(f"done in {time.monotonic() - began:.0f} s")
    return {"runs": runs, "peak_rss": peaks, "cold_start": cold, "failures": failures}


def _load_phase(
    workspace: Workspace, plan: Plan, stacks: Sequence[Stack]
) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    with _all_running(workspace, stacks) as running, _rss_sampler(running):
        if plan.warm_up:
            for key, stack in running.items():
                progress(f"warming up {key}")
                WORKLOADS[0].run(stack, WARM_UP_CONNECTIONS, plan.warm_up)
        chosen = [w for w in WORKLOADS if w.key in plan.workloads]
        steps = [(w, c) for w in chosen for c in (plan.sweep if w.sweep else ())]
        steps += [(w, plan.connections) for w in chosen if not w.sweep]
        total = plan.rounds * len(steps) * len(running)
        done = 0
        for round_ in range(plan.rounds):
            for workload, connections in steps:
                for key in _rotated(list(running), round_):
                    done += 1
                    progress(
                        f"[{done}/{total}] round {round_ + 1}: {workload.key} "
                        f"c={connections} on {key}"
                    )
                    run = _measure(workload, running[key], connections, plan.seconds, failures)
                    runs.append({"round": round_, "stack": key, **run})
        peaks = {key: stack.peak_rss for key, stack in running.items()}
    return runs, peaks, failures


def _measure(
    workload: Workload, running: Running, connections: int, seconds: int, failures: list[str]
) -> dict[str, Any]:
    base = {"workload": workload.key, "connections": connections}
    try:
        sample = workload.run(running, connections, seconds)
    except (RuntimeError, OSError) as exc:
        failures.append(f"{running.key} {workload.key} c={connections}: {exc}")
        return {**base, "failed": str(exc)}
    return {**base, **sample.as_dict()}


def _cold_starts(
    workspace: Workspace, plan: Plan, stacks: Sequence[Stack], failures: list[str]
) -> dict[str, list[float]]:
    cold: dict[str, list[float]] = {stack.key: [] for stack in stacks}
    for round_ in range(plan.rounds):
        for stack in _rotated(list(stacks), round_):
            progress(f"cold start of {stack.key}, round {round_ + 1}")
            try:
                running = stack.start(workspace)
            except RuntimeError as exc:
                failures.append(f"{stack.key} cold start: {exc}")
                continue
            running.stop()
            cold[stack.key].append(running.cold_start)
    return cold


@contextlib.contextmanager
def _all_running(workspace: Workspace, stacks: Sequence[Stack]) -> Iterator[dict[str, Running]]:
    running: dict[str, Running] = {}
    try:
        for stack in stacks:
            progress(f"starting {stack.key}: {stack.label}")
            running[stack.key] = stack.start(workspace)
        yield running
    finally:
        for started in running.values():
            started.stop()


@contextlib.contextmanager
def _rss_sampler(running: dict[str, Running]) -> Iterator[None]:
    """Sample every stack's resident memory in the background while the block runs."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_INTERVAL):
            for stack in running.values():
                stack.sample_rss()

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _rotated(items: list[T], by: int) -> list[T]:
    """The stacks in another order each round, so none is always measured first."""
    shift = by % len(items) if items else 0
    return items[shift:] + items[:shift]
