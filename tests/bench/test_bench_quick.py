"""`python -m bench --quick --check` in its smallest form: every stack runs, no request fails.

Benchmarks are not tests: nothing here asserts a speed. This proves the harness still works
(the stacks start, the load tools reach them, the outputs are written) and that no stack
answers a request with an error under light load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark's own dependencies (the `bench` extra): without them there is nothing to run.
for _module in ("fastapi", "sqlalchemy", "uvicorn", "matplotlib"):
    pytest.importorskip(_module, reason="the bench extra is not installed (make bench)")

from bench.report import problems  # noqa: E402
from bench.stacks import NGINX, STACKS  # noqa: E402

from tests.tools import require_file, require_tool  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEYS = tuple(stack.key for stack in STACKS)


def _need_tools() -> None:
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        require_tool(tool, package)
    require_file(NGINX, "nginx")


@pytest.mark.timeout(300)
def test_quick_check_runs_every_stack_without_a_failed_request(tmp_path: Path) -> None:
    _need_tools()
    out = tmp_path / "results"
    command = [sys.executable, "-m", "bench", "--quick", "--check", "--out", str(out)]
    # The smallest run that still touches every stack and workload: one second each, 8 conns.
    command += ["--duration", "1", "--connections", "8", "--concurrency", "8"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert {run["stack"] for run in results["runs"]} == set(KEYS)
    assert all(run["requests"] > 0 and run["errors"] == 0 for run in results["runs"])
    assert (out / "throughput.png").read_bytes().startswith(b"\x89PNG")
    assert "| `POST /task/` | 8 |" in (out / "results.md").read_text()


def _results(**changes: object) -> dict:
    runs = [
        {"stack": key, "workload": workload, "connections": 8, "requests": 10, "errors": 0}
        | {"timeouts": 0, "detail": {}}
        for key in KEYS
        for workload in (
            "get_root",
            "list_tasks",
            "create_task",
            "new_connection",
            "redirect",
            "http2",
        )
    ]
    results = {"runs": runs, "cold_start": {key: [1.0] for key in KEYS}, "failures": []}
    results.update(changes)
    return results


def test_check_passes_a_complete_clean_run() -> None:
    assert problems(_results(), KEYS) == []


def test_check_names_a_failed_request_a_timeout_and_a_stack_that_did_not_run() -> None:
    results = _results()
    results["runs"][0]["errors"] = 3
    results["runs"][1]["timeouts"] = 1
    results["runs"] = [run for run in results["runs"] if run["stack"] != "e"]
    results["cold_start"]["d"] = []
    found = problems(results, KEYS)
    assert any(p.startswith("a get_root c=8: 3 failed requests") for p in found)
    assert any(p.startswith("a list_tasks c=8: 0 failed requests, 1 timeouts") for p in found)
    assert "e create_task: no completed run" in found
    assert "d: no cold start measured" in found
