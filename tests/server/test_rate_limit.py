"""The per-client rate limit on real sockets: keyed on the address the proxy trust resolved."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest

from apiclub.settings import RateLimit, Settings, TlsMode
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

LIMIT = RateLimit(3, "minute")


async def statuses(client: httpx.AsyncClient, url: str, forwarded_for: list[str]) -> list[int]:
    """GET `url` once per X-Forwarded-For value, in order."""
    responses = [
        await client.get(url, headers={"x-forwarded-for": address, "host": "localhost"})
        for address in forwarded_for
    ]
    return [response.status_code for response in responses]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        tls=TlsMode.OFF,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        rate_limit=LIMIT,
    )
    async with serving(settings, redirect=False) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.api_port}/task/"
        first = await statuses(client, url, ["198.51.100.7"] * 4)
        refused = await client.get(url, headers={"x-forwarded-for": "198.51.100.7"})
        second = await statuses(client, url, ["198.51.100.8"])
    assert first == [200, 200, 200, 429]
    assert refused.json()["detail"].startswith(
        "too many requests from 198.51.100.7: at most 3 per minute, retry in "
    )
    assert second == [200]


async def test_an_untrusted_client_cannot_dodge_the_limit_with_x_forwarded_for(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    settings = Settings(**{**vars(files_settings), "rate_limit": LIMIT})
    async with serving(settings, redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            url = f"https://localhost:{server.api_port}/task/"
            forged = [f"198.51.100.{n}" for n in range(1, 6)]
            seen = await statuses(client, url, forged)
            refused = await client.get(url, headers={"x-real-ip": "198.51.100.9"})
    assert seen == [200, 200, 200, 429, 429]
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("too many requests from 127.0.0.1: ")
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_off_by_default_many_requests_from_one_client_pass(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings, redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            url = f"https://localhost:{server.api_port}/task/"
            seen = await statuses(client, url, ["198.51.100.7"] * 120)
    assert seen == [200] * 120
