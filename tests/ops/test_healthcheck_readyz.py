"""The image's healthcheck asks /readyz when the admin listener is on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.helpers import ROOT, Served, free_port, served
from tests.ops.test_readiness import BODY, start_slow_post

pytestmark = pytest.mark.timeout(120)
HEALTHCHECK = ROOT / "deploy" / "container" / "healthcheck.py"


def healthcheck(api: Served, metrics_port: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APICLUB_")}
    env.update(
        APICLUB_DATA_DIR=str(api.data_dir),
        APICLUB_HTTPS_PORT=str(api.port),
        APICLUB_METRICS_PORT=str(metrics_port if metrics_port is not None else api.admin_port),
    )
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30
    )


def test_healthy_when_ready(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        result = healthcheck(api)
        assert result.returncode == 0, result.stderr


def test_unhealthy_while_draining(tmp_path: Path) -> None:
    with served(tmp_path / "data", "--grace-period", "10") as api:
        slow = start_slow_post(api)
        time.sleep(0.3)
        api.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        result = healthcheck(api)
        slow.sendall(BODY[5:])
        slow.recv(65536)
        slow.close()
        assert result.returncode == 1
        assert "GET /readyz" in result.stderr and "503" in result.stderr, result.stderr


def test_unhealthy_when_the_admin_listener_is_not_there(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        result = healthcheck(api, metrics_port=free_port())
        assert result.returncode == 1
        assert "GET /readyz" in result.stderr, result.stderr
