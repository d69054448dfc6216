"""Certificates as the API stores them, and the API itself, for the nginx tests."""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from apiclub.server.asgi import ASGIApp, Receive, Scope, Send
from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import AuthMode, Settings, TlsMode
from apiclub.tls import CertManager
from tests.deploy.helpers import DOMAINS
from tests.server.conftest import Running, running_server


@pytest.fixture
def certs(tmp_path: Path) -> CertManager:
    """The API's own certificate upkeep for both domains: the files nginx reads, in the store."""
    settings = Settings(data_dir=tmp_path / "data", tls=TlsMode.INTERNAL, domains=DOMAINS)
    manager = CertManager(settings)
    manager.prepare()
    return manager


@pytest.fixture
def client_context(certs: CertManager) -> ssl.SSLContext:
    """A client trusting the local CA root that signed the served certificates."""
    return ssl.create_default_context(cafile=str(certs.root_cert_path()))


def behind_nginx(tmp_path: Path, auth: AuthMode = AuthMode.OFF) -> Settings:
    """The API as compose runs it behind nginx: TLS off, nginx (loopback) trusted.

    Tokens are off unless asked for (our public names would ask them for writes): these tests
    are about the proxy; `test_nginx_proxy.py` sends tokens through nginx with `auto`.
    """
    return Settings(
        data_dir=tmp_path / "api",
        tls=TlsMode.OFF,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        domains=DOMAINS,
        auth=auth,
    )


@asynccontextmanager
async def serving_app(settings: Settings, app: ASGIApp) -> AsyncIterator[Running]:
    """`tests.server.conftest.serving`, with our own app behind the server's middleware."""
    server = Server(settings, app=app, api_socket=bind_socket("127.0.0.1", 0, option="test"))
    async with running_server(server) as running:
        yield running


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer what the server made of the request: client, scheme, path, forwarded headers."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    body = json.dumps(
        {
            "client": scope["client"][0],
            "scheme": scope["scheme"],
            "path": scope["path"],
            "headers": headers,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
