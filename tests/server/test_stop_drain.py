"""The stop drains idle plain HTTP/1.1 connections only for a trusted proxy (nginx upstream).

nginx does not resend a POST sent on an idle upstream connection closed in that instant, so
the connections of a trusted proxy are answered through the keep-alive timeout at a stop;
any other peer gets the prompt close. Hypercorn's real protocol objects, driven as in
tests/compat/test_hypercorn_stop.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

import pytest
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.events import Closed, Updated
from hypercorn.events import RawData as Raw
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ConnectionState

from apiclub.compat import patches as compat
from apiclub.server.config import ListenerConfig
from tests.compat.test_hypercorn_stop import POST, Connection, RecordingApp

pytestmark = pytest.mark.anyio

PROXY = ipaddress.ip_network("10.0.0.0/24")


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        yield sock


async def stopped_request(
    sock: socket.socket, peer: str, ssl: bool
) -> tuple[RecordingApp, Connection]:
    """A keep-alive connection from `peer` that served one request; a second after the stop.

    Returns the app (the requests it ran) and what the connection wrote after the stop."""
    compat.install()
    app, context, connection = RecordingApp(), WorkerContext(None), Connection()
    config = ListenerConfig(sock, None, (PROXY,))
    async with TaskGroup(asyncio.get_running_loop()) as task_group:
        h11 = H11Protocol(
            ASGIWrapper(app),
            config,
            context,
            task_group,
            ConnectionState({}),
            ssl,
            (peer, 50000),
            ("10.0.0.9", 8000),
            connection.send,
        )
        await h11.handle(Raw(POST))
        while Updated(idle=True) not in connection.events:  # answered, idle again
            await asyncio.sleep(0.001)
        app.requests.clear()
        connection.events.clear()
        await context.terminated.set()
        await h11.handle(Raw(POST))
    return app, connection


async def test_a_trusted_proxys_request_after_the_stop_is_answered(
    listening: socket.socket,
) -> None:
    app, connection = await stopped_request(listening, "10.0.0.5", ssl=False)
    assert app.requests == ["POST"]
    assert connection.written.startswith(b"HTTP/1.1 201 ")
    assert b"connection: close" in connection.written.lower()


@pytest.mark.parametrize(
    ("peer", "ssl"),
    [
        pytest.param("192.0.2.7", False, id="untrusted-plain"),
        pytest.param("10.0.0.5", True, id="tls"),
    ],
)
async def test_any_other_peer_after_the_stop_is_closed_unanswered(
    listening: socket.socket, peer: str, ssl: bool
) -> None:
    app, connection = await stopped_request(listening, peer, ssl=ssl)
    assert app.requests == []
    assert connection.events == [Updated(idle=False), Closed()]
