"""deploy/container/healthcheck.py (the image's HEALTHCHECK) against the real server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from apiclub.settings import Settings, TlsMode
from tests.deploy.helpers import REPO, clean_env, free_port
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

HEALTHCHECK = REPO / "deploy/container/healthcheck.py"


async def health(**env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_healthy_over_tls_with_the_local_ca(tmp_path: Path) -> None:
    # http_port=0: no redirect listener (it would bind the default 8080).
    settings = Settings(data_dir=tmp_path / "data", tls=TlsMode.INTERNAL, http_port=0)
    async with serving(settings, redirect=False) as server:
        env = {"APICLUB_DATA_DIR": str(settings.data_dir), "APICLUB_DOMAINS": "localhost"}
        healthy = await health(APICLUB_HTTPS_PORT=str(server.api_port), **env)
        # The twins: a name the server does not serve, and a CA that did not sign it.
        wrong_name = await health(
            APICLUB_HTTPS_PORT=str(server.api_port),
            APICLUB_DOMAINS="other.example",
            APICLUB_DATA_DIR=str(settings.data_dir),
        )
        wrong_ca = await health(
            APICLUB_HTTPS_PORT=str(server.api_port),
            APICLUB_DOMAINS="localhost",
            APICLUB_DATA_DIR=str(tmp_path / "elsewhere"),
        )
    assert healthy == (0, "")
    assert wrong_name[0] == 1
    assert wrong_name[1].startswith("apiclub health: GET / on port")
    assert wrong_ca[0] == 1
    assert "CERTIFICATE_VERIFY_FAILED" in wrong_ca[1]


async def test_healthy_over_plain_http_behind_a_proxy(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", tls=TlsMode.OFF, domains=("apiclub.com",))
    async with serving(settings, redirect=False) as server:
        env = {"APICLUB_TLS": "off", "APICLUB_DOMAINS": "apiclub.com"}
        healthy = await health(APICLUB_HTTP_PORT=str(server.api_port), **env)
        misdirected = await health(
            APICLUB_HTTP_PORT=str(server.api_port),
            APICLUB_TLS="off",
            APICLUB_DOMAINS="evil.example",
        )
    assert healthy == (0, "")
    assert misdirected == (
        1,
        f"apiclub health: GET / on port {server.api_port} answered 421, not 200\n",
    )


async def test_unhealthy_when_nothing_listens() -> None:
    port = free_port()
    status, message = await health(APICLUB_TLS="off", APICLUB_HTTP_PORT=str(port))
    assert status == 1
    assert message.startswith(f"apiclub health: GET / on port {port} failed:")
    assert "Connection refused" in message
