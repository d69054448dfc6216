"""401 and 429 answers feed the auth and rate-limit counters, whoever answers them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from apiclub.server.asgi import Receive, Scope, Send, send_json
from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode
from tests.server.conftest import running_server

pytestmark = pytest.mark.anyio


async def refusing_app(scope: Scope, receive: Receive, send: Send) -> None:
    """401 on /private (as bearer tokens will answer), 200 elsewhere."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    status = 401 if scope["path"] == "/private" else 200
    await send_json(send, status, {"status": status})


async def test_401_answers_count_as_auth_rejections(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        Settings(data_dir=tmp_path / "data", tls=TlsMode.OFF, http_port=0), metrics_port=1
    )  # metrics_port: on (the admin listener itself is not started here)
    server = Server(settings, app=refusing_app, api_socket=bind_socket("127.0.0.1", 0, option="t"))
    async with running_server(server) as running, httpx.AsyncClient() as client:
        base = f"http://127.0.0.1:{running.api_port}"
        statuses = [
            (await client.get(f"{base}{p}")).status_code for p in ("/private",) * 3 + ("/",)
        ]
        assert statuses == [401, 401, 401, 200]
        metrics = server.metrics
        assert metrics is not None
        sample = metrics.registry.get_sample_value
        assert sample("apiclub_auth_rejections_total") == 3
        assert sample("apiclub_rate_limit_rejections_total") == 0
        labels = {"method": "GET", "route": "unmatched", "status": "401"}
        assert sample("apiclub_http_requests_total", labels) == 3
