"""The running server's port-80 listener answers ACME tokens from the shared store."""

from __future__ import annotations

import httpx
import pytest

from apiclub.settings import Settings
from apiclub.tls import FileStorage
from apiclub.tls.challenges import ChallengeStore

from .conftest import serving

pytestmark = pytest.mark.anyio

TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"


async def test_a_token_another_process_stored_is_answered(local_settings: Settings) -> None:
    async with serving(local_settings) as server:
        # Another process (`apiclub certs renew`) publishes a token in the same data directory.
        ChallengeStore(FileStorage(local_settings.data_dir)).add(TOKEN, f"{TOKEN}.key-auth")
        url = f"http://127.0.0.1:{server.redirect_port}/.well-known/acme-challenge/{TOKEN}"
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, headers={"host": "api.example.com"})
        assert (answer.status_code, answer.text) == (200, f"{TOKEN}.key-auth")
        assert answer.headers["content-type"] == "text/plain"


async def test_an_unknown_token_is_404_and_other_paths_still_redirect(
    local_settings: Settings,
) -> None:
    async with serving(local_settings) as server:
        base = f"http://127.0.0.1:{server.redirect_port}"
        async with httpx.AsyncClient() as client:
            unknown = await client.get(f"{base}/.well-known/acme-challenge/{TOKEN}")
            other = await client.get(f"{base}/task/", headers={"host": "localhost"})
        assert (unknown.status_code, unknown.text) == (404, "unknown ACME challenge token\n")
        assert other.status_code == 301
        assert other.headers["location"] == f"https://localhost:{server.api_port}/task/"
