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
THUMB = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


async def test_a_token_another_process_stored_is_answered(local_settings: Settings) -> None:
    async with serving(local_settings) as server:
        # Another process (`apiclub certs renew`) publishes a token in the same data directory.
        ChallengeStore(FileStorage(local_settings.data_dir)).add(TOKEN, f"{TOKEN}.{THUMB}")
        url = f"http://127.0.0.1:{server.redirect_port}/.well-known/acme-challenge/{TOKEN}"
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, headers={"host": "api.example.com"})
        assert (answer.status_code, answer.text) == (200, f"{TOKEN}.{THUMB}")
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


async def test_a_symlinked_challenge_answers_404_and_never_the_key(
    local_settings: Settings,
) -> None:
    # Issue 14: a link in acme/challenges/ to the CA's private key was served to anyone.
    async with serving(local_settings) as server:
        challenges = local_settings.data_dir / "acme/challenges"
        challenges.mkdir(parents=True, exist_ok=True)
        key = local_settings.data_dir / "ca/root-key.pem"
        assert key.is_file()
        (challenges / TOKEN).symlink_to(key)
        url = f"http://127.0.0.1:{server.redirect_port}/.well-known/acme-challenge/{TOKEN}"
        async with httpx.AsyncClient() as client:
            answer = await client.get(url, headers={"host": "localhost"})
        assert answer.status_code == 404
        assert b"PRIVATE KEY" not in answer.content


async def test_a_challenge_file_not_shaped_as_a_key_authorization_answers_404(
    local_settings: Settings,
) -> None:
    async with serving(local_settings) as server:
        challenges = local_settings.data_dir / "acme/challenges"
        challenges.mkdir(parents=True, exist_ok=True)
        (challenges / TOKEN).write_text("<script>alert(1)</script>")
        url = f"http://127.0.0.1:{server.redirect_port}/.well-known/acme-challenge/{TOKEN}"
        async with httpx.AsyncClient() as client:
            planted = await client.get(url, headers={"host": "localhost"})
            (challenges / TOKEN).write_text(f"{TOKEN}.{THUMB}")
            shaped = await client.get(url, headers={"host": "localhost"})
        assert planted.status_code == 404
        assert (shaped.status_code, shaped.text) == (200, f"{TOKEN}.{THUMB}")


async def test_a_token_answers_only_its_name_and_only_get_and_head(
    local_settings: Settings,
) -> None:
    async with serving(local_settings) as server:
        store = ChallengeStore(FileStorage(local_settings.data_dir))
        store.add(TOKEN, f"{TOKEN}.{THUMB}", "api.example.com")
        url = f"http://127.0.0.1:{server.redirect_port}/.well-known/acme-challenge/{TOKEN}"
        async with httpx.AsyncClient() as client:
            right = await client.get(url, headers={"host": "API.example.com:80"})
            head = await client.head(url, headers={"host": "api.example.com"})
            wrong = await client.get(url, headers={"host": "other.example.com"})
            post = await client.post(url, headers={"host": "api.example.com"})
        assert (right.status_code, right.text) == (200, f"{TOKEN}.{THUMB}")
        assert (head.status_code, head.content) == (200, b"")
        assert wrong.status_code == 404
        assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")
