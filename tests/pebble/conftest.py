"""A session pebble, settings pointing at it, and a server whose port-80 is pebble's httpPort."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode
from apiclub.tls import CertManager
from tests.server.conftest import Running, running_server
from tests.tools import apt_fix, missing

from .pebble import (
    MISSING_210,
    PROFILES,
    Pebble,
    debian_12,
    free_port,
    pebble_210,
    run_pebble,
)

NAME = "api.example.com"
FAST = {
    "store_check_interval": timedelta(milliseconds=200),
    "retry_initial": timedelta(milliseconds=200),
    "acme_poll_interval": timedelta(milliseconds=50),
    "ari_min_interval": timedelta(milliseconds=200),
}


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Debian 12's pebble 2.4: the ACME of 2023 (no ARI, no profiles)."""
    binaries = debian_12()
    if binaries is None:
        missing("pebble", apt_fix("pebble"))
    with run_pebble(tmp_path_factory.mktemp("pebble"), free_port(), binaries) as server:
        yield server


@pytest.fixture(scope="session")
def pebble210(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """pebble 2.10 from Debian sid: ARI, profiles (default 90 days, shortlived 6 days), IPs."""
    binaries = pebble_210()
    if binaries is None:
        missing("pebble 2.10", MISSING_210)
    workdir = tmp_path_factory.mktemp("pebble210")
    with run_pebble(workdir, free_port(), binaries, profiles=PROFILES) as server:
        yield server


def acme_settings(tmp_path: Path, pebble: Pebble, **changes: object) -> Settings:
    """Auto mode for a public-looking name, ACME at pebble, terms agreed."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "domains": (NAME,),
        "tls": TlsMode.AUTO,
        "http_port": pebble.http_port,
        "acme_directory": pebble.directory,
        "acme_ca_bundle": pebble.ca_bundle,
        "acme_email": "ops@example.com",
        "acme_agree_tos": True,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def fast_manager(settings: Settings) -> CertManager:
    """A manager that checks the store, retries and polls in fractions of a second."""
    return CertManager(settings, **FAST)


@asynccontextmanager
async def serving_acme(
    settings: Settings, *, http_port: int | None = None
) -> AsyncIterator[Running]:
    """Serve on a free HTTPS port, with the redirect listener on `http_port` (pebble's)."""
    api_socket = bind_socket("127.0.0.1", 0, option="test")
    port = settings.http_port if http_port is None else http_port
    redirect_socket = bind_socket("127.0.0.1", port, option="test")
    server = Server(
        settings,
        api_socket=api_socket,
        redirect_socket=redirect_socket,
        cert_manager=fast_manager(settings),
    )
    async with running_server(server) as running:
        yield running


def pebble_client(pebble: Pebble) -> ssl.SSLContext:
    """A client that trusts pebble's root only, as a browser trusts Let's Encrypt's."""
    return ssl.create_default_context(cafile=str(pebble.roots_file()))


def local_client(settings: Settings) -> ssl.SSLContext:
    """A client that trusts the project's local CA only (the stand-in's issuer)."""
    return ssl.create_default_context(cafile=str(settings.data_dir / "ca" / "root.pem"))
