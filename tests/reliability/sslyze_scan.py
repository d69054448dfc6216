"""sslyze in its own virtual environment, and a scan of one TLS listener judged by its checker.

sslyze 6.x needs `cryptography<47` while the project's `acme` needs `>=47` (NOTES.md), so it
cannot live in the project's venv: it gets `.venv/sslyze` (git-ignored, recreated by CI), created
on first use under a file lock (two test runs at once must not build it twice) and reused after.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tools import missing

SSLYZE_VERSION = "6.3.1"
VENV = Path(__file__).resolve().parents[2] / ".venv" / "sslyze"
INSTALL_TIMEOUT = 600
SCAN_TIMEOUT = 120
PYPI_PROBE = "https://pypi.org/simple/sslyze/"
ISSUE = re.compile(r"^ +\* (\w+): (.*)$", re.MULTILINE)
"""A compliance problem as sslyze prints it: `        * tls_curves: TLS curves ...`."""


def sslyze_python(announce: Callable[[str], object]) -> Path:
    """The interpreter of `.venv/sslyze`, creating it with the pinned sslyze if needed.

    Skips the test (with the reason) only when PyPI cannot be reached; any other failure to
    install is a test failure carrying pip's output.
    """
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(exist_ok=True)
    with (VENV.parent / "sslyze.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(python) == SSLYZE_VERSION:
            return python
        announce(
            f"creating {VENV} with sslyze=={SSLYZE_VERSION} (its own venv: sslyze needs "
            "cryptography<47, acme needs >=47; NOTES.md)"
        )
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"sslyze=={SSLYZE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if pip.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            if (unreachable := _pypi_unreachable()) is not None:
                missing(
                    f"sslyze (its own venv, {VENV})",
                    f"needs PyPI, which is unreachable ({unreachable})",
                )
            pytest.fail(f"pip install sslyze=={SSLYZE_VERSION} failed:\n{pip.stdout}{pip.stderr}")
    return python


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sslyze'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def _pypi_unreachable() -> str | None:
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT"))
    try:
        with urllib.request.urlopen(PYPI_PROBE, timeout=15, context=context):
            return None
    except OSError as exc:
        return str(exc)


@dataclass
class Scan:
    """One server's scan: sslyze's JSON result and its Mozilla "intermediate" verdict."""

    result: dict[str, Any]
    """`server_scan_results[0]` of sslyze's `--json_out`."""
    issues: dict[str, str]
    """What sslyze's checker found against the profile, by rule (`tls_curves`, ...); {} passes."""
    output: str

    def command(self, name: str) -> dict[str, Any]:
        """The result of one scan command, which must have completed."""
        attempt = self.result["scan_result"][name]
        assert attempt["status"] == "COMPLETED", attempt
        result: dict[str, Any] = attempt["result"]
        return result

    def accepted_suites(self, name: str) -> list[str]:
        return [s["cipher_suite"]["name"] for s in self.command(name)["accepted_cipher_suites"]]


def scan(python: Path, port: int, root: Path, out: Path) -> Scan:
    """Scan `localhost:port` (at 127.0.0.1) against Mozilla's intermediate profile, trusting `root`.

    sslyze checks compliance only in its CLI's text output (exit 1 when not compliant); the
    JSON holds the raw results. Both are returned.
    """
    json_out = out / "sslyze.json"
    run = subprocess.run(
        [
            str(python),
            "-m",
            "sslyze",
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={root}",
            f"--json_out={json_out}",
            f"localhost:{port}{{127.0.0.1}}",
        ],
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT,
    )
    output = run.stdout + run.stderr
    assert json_out.exists(), f"sslyze wrote no JSON (exit {run.returncode}):\n{output}"
    [result] = json.loads(json_out.read_text())["server_scan_results"]
    assert result["scan_status"] == "COMPLETED", (result["connectivity_error_trace"], output)
    verdict = output.split("COMPLIANCE AGAINST TLS CONFIGURATION", 1)[-1]
    assert "Compliant." in verdict or "Not compliant." in verdict, output
    issues = dict(ISSUE.findall(verdict))
    assert (run.returncode == 0) == (issues == {}), output
    return Scan(result=result, issues=issues, output=output)
