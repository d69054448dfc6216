"""/metrics off loopback only with a bearer token, read from a file."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from apiclub.errors import ConfigError
from apiclub.settings import Settings
from tests.ops.helpers import prometheus, served
from tests.processes import run_apiclub

pytestmark = pytest.mark.timeout(120)


def get(port: int, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_a_public_metrics_host_needs_a_token_file() -> None:
    with pytest.raises(ConfigError, match="APICLUB_METRICS_TOKEN_FILE"):
        Settings.from_env({"APICLUB_METRICS_PORT": "9464", "APICLUB_METRICS_HOST": "0.0.0.0"})
    Settings.from_env({"APICLUB_METRICS_PORT": "9464", "APICLUB_METRICS_HOST": "127.0.0.1"})
    Settings.from_env(
        {
            "APICLUB_METRICS_PORT": "9464",
            "APICLUB_METRICS_HOST": "0.0.0.0",
            "APICLUB_METRICS_TOKEN_FILE": "/run/secrets/metrics",
        }
    )


def test_metrics_ask_for_the_token_and_probes_do_not(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("f00dfeed" * 4 + "\n")
    with served(tmp_path / "data", "--metrics-token-file", str(token_file)) as api:
        assert get(api.admin_port, "/metrics") == 401
        assert get(api.admin_port, "/metrics", "wrong") == 401
        assert get(api.admin_port, "/metrics", "f00dfeed" * 4) == 200
        assert get(api.admin_port, "/readyz") == 200
        assert get(api.admin_port, "/livez") == 200


def test_without_a_token_file_metrics_are_open_on_loopback(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        assert get(api.admin_port, "/metrics") == 200


def test_an_empty_token_file_stops_the_start(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = run_apiclub(
        "serve", "--https-port", "0", "--http-port", "0", "--metrics-port", "1",
        "--metrics-token-file", str(empty), data_dir=tmp_path / "data",
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"apiclub: error: APICLUB_METRICS_TOKEN_FILE='{empty}' holds no usable token")
    ), result.stderr


def test_a_taken_metrics_port_stops_the_start_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            result = run_apiclub(
                "serve", "--https-port", "0", "--http-port", "0", "--metrics-port", str(port),
                "--workers", workers, data_dir=tmp_path / "data",
            )  # fmt: skip
            assert result.returncode == 1
            last = result.stderr.strip().splitlines()[-1]
            assert last.startswith("apiclub: error:") and "--metrics-port" in last, result.stderr


@pytest.mark.parametrize("with_token", [True, False])
def test_prometheus_scrapes_with_the_token_file(tmp_path: Path, with_token: bool) -> None:
    """The README's scrape setting works; without it the target is down (the twin)."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text("c0ffee" * 8 + "\n")
    with (
        served(tmp_path / "data", "--metrics-token-file", str(token_file)) as api,
        prometheus(
            tmp_path, f"127.0.0.1:{api.admin_port}", token_file if with_token else None
        ) as prom,
    ):
        result = prom.wait_for("up", lambda r: bool(r))
        up = [float(s["value"][1]) for s in result]
        assert up == ([1.0] if with_token else [0.0])
        assert bool(prom.query("apiclub_build_info")) is with_token
