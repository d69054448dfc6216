"""A real `apiclub serve` with its admin listener, and a real Prometheus scraping it."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.processes import BANNER, start_apiclub
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "prometheus"
ADMIN = "metrics http://127.0.0.1:"


def need_tool(name: str) -> str:
    """The tool's path; a missing tool fails under CI=true and skips elsewhere (tests.tools)."""
    return require_tool(name, "prometheus")


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for tools that cannot report a port-0 choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    admin_port: int
    data_dir: Path
    stderr: IO[str]

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "ca" / "root.pem"))

    def admin(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}") as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()


@contextmanager
def served(data_dir: Path, *extra: str) -> Iterator[Served]:
    """`apiclub serve` on free ports (redirect listener off) with `--metrics-port`."""
    admin_port = free_port()
    with tempfile.TemporaryFile("w+") as stderr:
        process = start_apiclub(
            "serve",
            "--https-port",
            "0",
            "--http-port",
            "0",
            "--metrics-port",
            str(admin_port),
            *extra,
            data_dir=data_dir,
            stderr=stderr,
        )
        assert process.stdout is not None
        lines = []
        while not any(ADMIN in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        match = BANNER.search("".join(lines))
        running = Served(process, int(match.group(1)) if match else 0, admin_port, data_dir, stderr)
        if match is None or not any(ADMIN in line for line in lines):
            process.kill()
            process.communicate()
            pytest.fail(f"no banner: {lines!r}; stderr: {running.log()}")
        try:
            yield running
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def shipped_config(
    target: str, rules: bool = True, token_file: Path | None = None
) -> dict[str, Any]:
    """The shipped scrape configuration, pointed at `target`, scraping every second (with the
    README's `authorization: credentials_file` when a token file is given)."""
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    if token_file is not None:
        config["scrape_configs"][0]["authorization"] = {"credentials_file": str(token_file)}
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [target]
    config["rule_files"] = [str(SHIPPED / "alerts.yml")] if rules else []
    return config


class Prometheus:
    """A private Prometheus on loopback; `query` asks its HTTP API."""

    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.process = process

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str, key: str) -> dict[str, float]:
        """`expr`'s samples keyed by the label `key` (or by all labels joined by ',')."""
        found = {}
        for sample in self.query(expr):
            labels = sample["metric"]
            name = (
                labels.get(key)
                if key in labels
                else ",".join(labels.get(k, "") for k in key.split(","))
            )
            found[str(name)] = float(sample["value"][1])
        return found

    def wait_for(self, expr: str, check: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """Query until `check(result)` holds; the last result either way."""
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not check(result) and time.monotonic() < deadline:
            time.sleep(0.5)
            result = self.query(expr)
        return result


@contextmanager
def prometheus(tmp_path: Path, target: str, token_file: Path | None = None) -> Iterator[Prometheus]:
    binary = need_tool("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(shipped_config(target, token_file=token_file)))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = Prometheus(port, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                running.query("up")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "prometheus.log").read_text())
                time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
