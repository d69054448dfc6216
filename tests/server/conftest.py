"""Real servers on free ports of 127.0.0.1, started the way production starts them."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode

NAMES = ("localhost", "127.0.0.1", "::1")


class Running:
    """A served `Server` (its attributes read through) that a test can also stop early."""

    def __init__(self, server: Server, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.server = server
        self._task = task
        self._stop = stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    async def stop(self) -> None:
        """Trigger the graceful stop that SIGTERM triggers, and wait for it."""
        self._stop.set()
        await self._task


@asynccontextmanager
async def serving(settings: Settings, *, redirect: bool = True) -> AsyncIterator[Running]:
    """Run `Server.serve` on port-0 sockets until the block ends, then stop it gracefully."""
    api_socket = bind_socket("127.0.0.1", 0, option="test")
    redirect_socket = bind_socket("127.0.0.1", 0, option="test") if redirect else None
    if not redirect:
        # Otherwise Server binds settings.http_port itself (8080 by default): a fixed port.
        settings = dataclasses.replace(settings, http_port=0)
    server = Server(settings, api_socket=api_socket, redirect_socket=redirect_socket)
    async with running_server(server) as running:
        yield running


@asynccontextmanager
async def running_server(server: Server) -> AsyncIterator[Running]:
    """Prepare and serve `server` until the block ends (or its start fails), then stop it."""
    server.prepare()
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop.wait))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    running = Running(server, task, stop)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="session")
def trust_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files_settings(tmp_path: Path, trust_ca: trustme.CA) -> Settings:
    """Files mode with a trustme leaf for the default names."""
    leaf = trust_ca.issue_cert(*NAMES)
    cert_file, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return Settings(
        data_dir=tmp_path / "data", tls=TlsMode.FILES, cert_file=cert_file, key_file=key_file
    )


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """Local-CA mode, the `make dev` default."""
    return Settings(data_dir=tmp_path / "data", tls=TlsMode.INTERNAL)


@pytest.fixture
def trust_context(trust_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    trust_ca.configure_trust(context)
    return context


def local_ca_context(server: Server | Running) -> ssl.SSLContext:
    """A client context trusting the project's own root CA."""
    assert server.cert_manager is not None
    return ssl.create_default_context(cafile=str(server.cert_manager.root_cert_path()))
