"""The nginx profile hands its `$request_id` to the API, which keeps it (nginx is trusted)."""

from __future__ import annotations

import dataclasses
import re
import ssl
from pathlib import Path

import httpx
import pytest

from apiclub.tls import CertManager
from tests.deploy.conftest import behind_nginx, echo_app, serving_app
from tests.deploy.helpers import need_nginx, running_nginx

pytestmark = pytest.mark.anyio


async def test_nginx_request_id_reaches_the_api_and_comes_back(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    need_nginx()
    settings = dataclasses.replace(behind_nginx(tmp_path), log_format="json")
    async with serving_app(settings, echo_app) as api:
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            async with httpx.AsyncClient(verify=client_context) as client:
                answer = await client.get(
                    f"https://127.0.0.1:{nginx.https_port}/seen",
                    headers={"host": "apiclub.com", "x-request-id": "forged-by-the-client"},
                    extensions={"sni_hostname": "apiclub.com"},
                )
    assert answer.status_code == 200
    seen = answer.json()["headers"]["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", seen), "nginx's own $request_id, not the client's"
    assert answer.headers["x-request-id"] == seen, "the API kept the trusted proxy's id"
