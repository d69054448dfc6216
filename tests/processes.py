"""Run `apiclub` as an operator does: a real process, its banner, its exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

BANNER = re.compile(r"apiclub serving https://localhost:(\d+)/")


def start_apiclub(
    *args: str,
    data_dir: Path,
    stderr: IO[str] | int = subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start `python -m apiclub ARGS` with only our data directory (and `env`) configured."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
    environment["APICLUB_DATA_DIR"] = str(data_dir)
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "apiclub", *args],
        env=environment,
        text=True,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def run_apiclub(
    *args: str, data_dir: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `apiclub ARGS` to completion."""
    process = start_apiclub(*args, data_dir=data_dir, env=env)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@dataclass
class Served:
    """A running `apiclub serve`: the process, its HTTPS port and the root CA to trust."""

    process: subprocess.Popen[str]
    port: int
    root: Path
    stderr: IO[str]

    def log(self) -> str:
        """Everything the process wrote to stderr so far (logs, access log)."""
        self.stderr.seek(0)
        return self.stderr.read()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@contextmanager
def served(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`apiclub serve` on a free HTTPS port with the redirect listener off, local CA.

    Its stderr goes to a file, not a pipe: a busy server's access log would fill a pipe
    nobody reads and block the server.
    """
    with tempfile.TemporaryFile("w+") as stderr:
        process = start_apiclub(
            "serve",
            "--https-port",
            "0",
            "--http-port",
            "0",
            *extra,
            data_dir=data_dir,
            stderr=stderr,
            env=env,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        match = BANNER.search(line)
        running = Served(
            process, int(match.group(1)) if match else 0, data_dir / "ca/root.pem", stderr
        )
        if match is None:
            process.kill()
            process.communicate()
            pytest.fail(f"no banner: {line!r}; stderr: {running.log()}")
        try:
            yield running
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
