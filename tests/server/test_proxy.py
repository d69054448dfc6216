from __future__ import annotations

import ipaddress
import logging
from typing import Any

import httpx
import pytest

from apiclub.server.asgi import Receive, Scope, Send
from apiclub.server.proxy import ProxyHeadersMiddleware
from apiclub.settings import Settings, TlsMode
from tests.server.asgi_helpers import call, http_scope
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

NGINX = (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("fd00::/8"))


async def seen_by_app(
    peer: str, headers: list[tuple[bytes, bytes]], trusted: Any = NGINX
) -> tuple[Any, str]:
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(client=scope["client"], scheme=scope["scheme"])

    scope = http_scope(headers=headers)
    scope["client"] = (peer, 40000)
    await call(ProxyHeadersMiddleware(app, trusted), scope)
    return seen["client"], seen["scheme"]


async def test_trusted_proxy_sets_client_and_scheme() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
    assert await seen_by_app("10.0.0.5", headers) == (("198.51.100.7", 0), "https")


async def test_untrusted_peer_changes_nothing() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
    headers.append((b"x-real-ip", b"198.51.100.8"))
    assert await seen_by_app("203.0.113.9", headers) == (("203.0.113.9", 40000), "http")


async def test_no_trusted_proxies_means_headers_are_ignored() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.7")]
    assert await seen_by_app("10.0.0.5", headers, trusted=()) == (("10.0.0.5", 40000), "http")


async def test_forged_entries_left_of_the_proxy_chain_are_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the real peer address.
    headers = [(b"x-forwarded-for", b"1.2.3.4, 198.51.100.7")]
    assert await seen_by_app("10.0.0.5", headers) == (("198.51.100.7", 0), "http")


async def test_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.7, fd00::2"), (b"x-forwarded-for", b"10.0.0.5")]
    assert await seen_by_app("10.0.0.5", headers) == (("198.51.100.7", 0), "http")


async def test_x_real_ip_is_used_without_x_forwarded_for() -> None:
    headers = [(b"x-real-ip", b" 2001:db8::1 ")]
    assert await seen_by_app("10.0.0.5", headers) == (("2001:db8::1", 0), "http")


@pytest.mark.parametrize("value", [b"unknown", b"", b"not an ip, ,"])
async def test_garbage_forwarded_for_keeps_the_peer(value: bytes) -> None:
    headers = [(b"x-forwarded-for", value)]
    assert await seen_by_app("10.0.0.5", headers) == (("10.0.0.5", 40000), "http")


@pytest.mark.parametrize(
    "header",
    [b"x-forwarded-for", b"x-real-ip"],
)
async def test_an_ipv6_zone_with_text_is_not_taken_as_the_client(header: bytes) -> None:
    # Issue 14: Python's ipaddress takes "fe80::1%<anything>" as an address.
    forged = b'fe80::1%" injected "line'
    assert await seen_by_app("10.0.0.5", [(header, forged)]) == (("10.0.0.5", 40000), "http")


async def test_a_forwarded_address_is_stored_in_canonical_form() -> None:
    headers = [(b"x-forwarded-for", b"2001:DB8:0:0::1")]
    assert await seen_by_app("10.0.0.5", headers) == (("2001:db8::1", 0), "http")


async def test_unknown_scheme_is_ignored() -> None:
    headers = [(b"x-forwarded-proto", b"gopher")]
    assert await seen_by_app("10.0.0.5", headers) == (("10.0.0.5", 40000), "http")


async def test_access_log_shows_the_forwarded_client_from_a_trusted_peer_only(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base = {"data_dir": tmp_path, "tls": TlsMode.OFF}
    forged = {"x-forwarded-for": "198.51.100.7", "host": "localhost"}
    for trusted, expected in (((), "127.0.0.1:"), (("127.0.0.1",), "198.51.100.7:")):
        networks = tuple(ipaddress.ip_network(net) for net in trusted)
        settings = Settings(**base, trusted_proxies=networks)  # type: ignore[arg-type]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="apiclub.access"):
            async with serving(settings, redirect=False) as server, httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{server.api_port}/", headers=forged)
        assert response.json() == {"status": "ok"}
        access = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
        assert len(access) == 1
        assert access[0].startswith(expected), access
