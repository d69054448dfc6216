"""Strict-Transport-Security: which names get it, and only on HTTPS answers (RFC 6797)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from apiclub.server.asgi import Receive, Scope, Send
from apiclub.server.hsts import HstsMiddleware, hsts_hosts
from apiclub.settings import HstsMode, Settings, TlsMode
from apiclub.tls import CertManager
from tests.server.asgi_helpers import call, http_scope
from tests.server.conftest import local_ca_context, serving

pytestmark = pytest.mark.anyio

PUBLIC = "api.example.com"
LOCALS = ("localhost", "127.0.0.1", "::1", "intranet", "box.internal", "app.test", "a.localhost")
YEAR = "max-age=31536000"


def hosts_for(tmp_path: Path, **values: Any) -> frozenset[str]:
    values.setdefault("domains", (*LOCALS, PUBLIC))
    settings = Settings(data_dir=tmp_path / "data", **values)
    manager = CertManager(settings) if settings.tls is not TlsMode.OFF else None
    return hsts_hosts(settings, manager.acme_names if manager else ())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"acme_agree_tos": True}, {PUBLIC}),
        ({"tls": TlsMode.ACME, "acme_agree_tos": True}, {PUBLIC}),
        ({"hsts": HstsMode.ON, "tls": TlsMode.INTERNAL}, {*LOCALS, PUBLIC}),
    ],
)
def test_auto_picks_public_acme_names_and_on_picks_every_name(
    tmp_path: Path, values: dict[str, Any], expected: set[str]
) -> None:
    assert hosts_for(tmp_path, **values) == expected


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="auto-without-agreed-terms-no-acme-names"),
        pytest.param({"tls": TlsMode.INTERNAL}, id="auto-local-ca"),
        pytest.param(
            {"tls": TlsMode.FILES, "cert_file": Path("c"), "key_file": Path("k")}, id="auto-files"
        ),
        pytest.param({"hsts": HstsMode.OFF, "acme_agree_tos": True}, id="off-with-acme"),
        pytest.param({"hsts": HstsMode.ON, "tls": TlsMode.OFF}, id="on-behind-a-proxy"),
        pytest.param({"tls": TlsMode.OFF, "acme_agree_tos": True}, id="auto-behind-a-proxy"),
    ],
)
def test_no_name_gets_hsts(tmp_path: Path, values: dict[str, Any]) -> None:
    assert hosts_for(tmp_path, **values) == frozenset()


async def app_answering_ok(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"text/plain"), (b"strict-transport-security", b"max-age=1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def sent_for(scheme: str, host: str, *, http2: bool = False) -> list[Any]:
    scope = http_scope(host=None if http2 else host)
    scope["scheme"] = scheme
    if http2:
        scope.update(http_version="2", headers=[(b":authority", f"{host}:8443".encode())])
    return await call(HstsMiddleware(app_answering_ok, [PUBLIC], 600), scope)


async def test_middleware_adds_one_header_for_a_listed_host_over_https() -> None:
    headers = [(b"content-type", b"text/plain"), (b"strict-transport-security", b"max-age=600")]
    expected = [
        {"type": "http.response.start", "status": 200, "headers": headers},
        {"type": "http.response.body", "body": b"ok"},
    ]
    assert await sent_for("https", "API.example.com.") == expected
    assert await sent_for("https", PUBLIC, http2=True) == expected


@pytest.mark.parametrize(("scheme", "host"), [("http", PUBLIC), ("https", "localhost")])
async def test_middleware_leaves_plain_http_and_other_hosts_alone(scheme: str, host: str) -> None:
    start = (await sent_for(scheme, host))[0]
    assert (b"strict-transport-security", b"max-age=1") in start["headers"]
    assert (b"strict-transport-security", b"max-age=600") not in start["headers"]


async def get_as(client: httpx.AsyncClient, port: int, name: str) -> httpx.Response:
    """GET / on 127.0.0.1 naming `name` in SNI and Host, as a browser resolving it here would."""
    return await client.get(
        f"https://127.0.0.1:{port}/",
        headers={"host": name},
        extensions={"sni_hostname": name},
    )


async def redirect_of(port: int) -> httpx.Response:
    """What the port-80 listener answers for the public name."""
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}/", headers={"host": PUBLIC})


@pytest.mark.parametrize(("hsts", "expected"), [(HstsMode.AUTO, YEAR), (HstsMode.OFF, None)])
async def test_auto_sends_hsts_for_the_acme_name_only_and_never_on_port_80(
    tmp_path: Path, hsts: HstsMode, expected: str | None
) -> None:
    # The ACME server is unreachable: the public name is served on its local-CA stand-in, and
    # the decision is the one the real CertManager makes for an ACME name.
    settings = Settings(
        data_dir=tmp_path / "data",
        domains=("localhost", "127.0.0.1", PUBLIC),
        acme_agree_tos=True,
        acme_directory="https://127.0.0.1:1/unreachable",
        hsts=hsts,
    )
    async with serving(settings) as server:
        async with httpx.AsyncClient(verify=local_ca_context(server)) as client:
            public = await get_as(client, server.api_port, PUBLIC)
            local = await client.get(f"https://localhost:{server.api_port}/")
            by_ip = await client.get(f"https://127.0.0.1:{server.api_port}/")
        redirect = await redirect_of(server.redirect_port)
    assert public.json() == {"status": "ok"}
    assert public.headers.get("strict-transport-security") == expected
    assert (local.status_code, by_ip.status_code) == (200, 200)
    assert "strict-transport-security" not in local.headers
    assert "strict-transport-security" not in by_ip.headers
    assert redirect.status_code == 301
    assert "strict-transport-security" not in redirect.headers


@pytest.fixture
def public_files_settings(tmp_path: Path, trust_ca: trustme.CA) -> Settings:
    leaf = trust_ca.issue_cert(PUBLIC, "localhost")
    cert_file, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return Settings(
        data_dir=tmp_path / "data",
        tls=TlsMode.FILES,
        cert_file=cert_file,
        key_file=key_file,
        domains=(PUBLIC, "localhost"),
    )


@pytest.mark.parametrize(
    ("hsts", "max_age", "expected"),
    [(HstsMode.AUTO, 600, None), (HstsMode.ON, 600, "max-age=600"), (HstsMode.ON, 0, "max-age=0")],
)
async def test_files_mode_sends_hsts_only_when_asked(
    public_files_settings: Settings,
    trust_context: ssl.SSLContext,
    hsts: HstsMode,
    max_age: int,
    expected: str | None,
) -> None:
    settings = Settings(**{**vars(public_files_settings), "hsts": hsts, "hsts_max_age": max_age})
    async with serving(settings) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            public = await get_as(client, server.api_port, PUBLIC)
            local = await client.get(f"https://localhost:{server.api_port}/task/999")
        redirect = await redirect_of(server.redirect_port)
    assert public.json() == {"status": "ok"}
    assert public.headers.get("strict-transport-security") == expected
    assert local.status_code == 404  # error answers carry it too
    assert local.headers.get("strict-transport-security") == expected
    assert redirect.status_code == 301
    assert "strict-transport-security" not in redirect.headers
