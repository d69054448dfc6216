"""Debian's nginx with the shipped configuration in front of two replicas on loopback ports.

Each replica is a real server (Hypercorn, the API's middleware) whose app answers its own name
with a chosen status, so a test sees which replica answered and what nginx did with a failure.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from apiclub.server.asgi import Receive, Scope, Send
from apiclub.tls import CertManager
from tests.deploy.conftest import behind_nginx, serving_app
from tests.deploy.helpers import DOMAINS, Nginx, free_port, need_nginx, running_nginx

pytestmark = pytest.mark.anyio

NAME = DOMAINS[0]
REQUESTS = 12

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def replica_app(name: str, status: int) -> App:
    """An app answering `{"replica": name}` with `status` to every request."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = json.dumps({"replica": name}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@asynccontextmanager
async def replicas(tmp_path: Path, *statuses: int | None) -> AsyncIterator[list[int]]:
    """One server per status on its own port (None: a port nobody listens on); their ports."""
    async with AsyncExitStack() as stack:
        ports = []
        for index, status in enumerate(statuses):
            if status is None:
                ports.append(free_port())
                continue
            settings = behind_nginx(tmp_path / f"replica-{index}")
            app = replica_app(f"replica-{index}", status)
            running = await stack.enter_async_context(serving_app(settings, app))
            ports.append(running.api_port)
        yield ports


async def send_all(nginx: Nginx, context: ssl.SSLContext, method: str) -> list[tuple[int, str]]:
    """REQUESTS requests, each on a new connection; (status, replica) for each."""
    answers = []
    for _ in range(REQUESTS):
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.request(
                method,
                f"https://127.0.0.1:{nginx.https_port}/task/",
                headers={"host": NAME},
                extensions={"sni_hostname": NAME},
            )
        answers.append((response.status_code, response.json().get("replica", "nginx")))
    return answers


async def through_nginx(
    tmp_path: Path,
    certs: CertManager,
    context: ssl.SSLContext,
    statuses: tuple[int | None, ...],
    method: str,
) -> list[tuple[int, str]]:
    """Replicas answering `statuses`, nginx in front of them in that order, and the answers."""
    async with replicas(tmp_path, *statuses) as ports:
        with running_nginx(certs.settings.data_dir, ports) as nginx:
            return await send_all(nginx, context, method)


@pytest.fixture(autouse=True)
def nginx_installed() -> None:
    need_nginx()


async def test_requests_are_spread_over_the_replicas(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    answers = await through_nginx(tmp_path, certs, client_context, (200, 200), "GET")
    assert {status for status, _ in answers} == {200}
    assert {replica for _, replica in answers} == {"replica-0", "replica-1"}


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_stopped_replica_costs_no_request_even_a_write(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext, method: str
) -> None:
    # Refused connections sent nothing, so nginx passes even a POST on to the next replica.
    answers = await through_nginx(tmp_path, certs, client_context, (None, 200), method)
    assert answers == [(200, "replica-1")] * REQUESTS


async def test_a_replica_answering_503_is_skipped_for_reads(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    answers = await through_nginx(tmp_path, certs, client_context, (503, 200), "GET")
    assert answers == [(200, "replica-1")] * REQUESTS


async def test_a_write_that_reached_a_replica_is_never_sent_to_another(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    # The twin: the POST reached replica-0, which answered 503; resending it could apply a
    # write twice, so nginx hands the replica's own 503 to the client (no `non_idempotent`).
    answers = await through_nginx(tmp_path, certs, client_context, (503, 200), "POST")
    assert (503, "replica-0") in answers
    assert {answer for answer in answers} <= {(503, "replica-0"), (200, "replica-1")}
