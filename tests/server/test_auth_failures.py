"""Failed token attempts on real sockets: counted per address the proxy trust resolved."""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest

from apiclub.settings import AuthMode, Settings, TlsMode
from apiclub.tokens import TokenStore
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

WRONG = {"authorization": "Bearer apiclub_wrong", "host": "localhost"}


async def attempts(
    client: httpx.AsyncClient, url: str, forwarded_for: list[str], headers: dict[str, str]
) -> list[int]:
    """POST a task once per X-Forwarded-For value, in order; the statuses."""
    responses = [
        await client.post(url, json={"name": "x"}, headers={**headers, "x-forwarded-for": a})
        for a in forwarded_for
    ]
    return [response.status_code for response in responses]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_failures(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        tls=TlsMode.OFF,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        auth=AuthMode.WRITES,
    )
    token = TokenStore(settings.data_dir).add("ci")
    right = {"authorization": f"Bearer {token}", "host": "localhost"}
    async with serving(settings, redirect=False) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.api_port}/task/"
        guesser = await attempts(client, url, ["198.51.100.7"] * 11, WRONG)
        locked = await attempts(client, url, ["198.51.100.7"], right)
        other = await attempts(client, url, ["198.51.100.8"], right)
    assert guesser == [401] * 10 + [429]
    assert (locked, other) == ([429], [201])


async def test_an_untrusted_client_cannot_dodge_the_failure_limit_with_x_forwarded_for(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    settings = dataclasses.replace(files_settings, auth=AuthMode.WRITES)
    async with serving(settings, redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            url = f"https://localhost:{server.api_port}/task/"
            forged = [f"198.51.100.{n}" for n in range(1, 13)]
            seen = await attempts(client, url, forged, WRONG)
            refused = await client.post(url, json={"name": "x"}, headers=WRONG)
    assert seen == [401] * 10 + [429, 429]
    assert refused.json()["detail"].startswith("too many failed token attempts from 127.0.0.1: ")
