"""What a figure needs beside it: the machine, its load, the versions, the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.stacks import NGINX, REPO

PACKAGES = (
    "litestar",
    "hypercorn",
    "piccolo",
    "msgspec",
    "fastapi",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "aiosqlite",
)


def describe(command: str) -> dict[str, Any]:
    """The run's context, as JSON-ready values."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "command": command,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "load_average_at_start": os.getloadavg(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _first_line([NGINX, "-v"]),
        "wrk": _first_line(["wrk", "--version"]),
        "h2load": _first_line(["h2load", "--version"]),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(  # noqa: S603 (fixed tools)
            argv, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else ""
