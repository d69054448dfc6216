"""Run `apiclub` as an operator does: a real process, its banner, its exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BANNER = re.compile(r"apiclub serving https://localhost:(\d+)/")


def start_apiclub(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    """Start `python -m apiclub ARGS` with only our data directory configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
    env["APICLUB_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "apiclub", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_apiclub(
    *args: str, data_dir: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `apiclub ARGS` to completion."""
    process = start_apiclub(*args, data_dir=data_dir)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@dataclass
class Served:
    """A running `apiclub serve`: the process, its HTTPS port and the root CA to trust."""

    process: subprocess.Popen[str]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@contextmanager
def served(data_dir: Path, *extra: str) -> Iterator[Served]:
    """`apiclub serve` on a free HTTPS port with the redirect listener off, local CA."""
    process = start_apiclub(
        "serve", "--https-port", "0", "--http-port", "0", *extra, data_dir=data_dir
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = BANNER.search(line)
    if match is None:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"no banner: {line!r}; stderr: {stderr}")
    try:
        yield Served(process, int(match.group(1)), data_dir / "ca" / "root.pem")
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
