"""Hypercorn's own HTTP/1.1 and HTTP/2 protocol objects, patched, at the instant a stop begins.

A race over sockets cannot be staged deterministically, so these drive the real protocol
classes with the bytes a client sends and collect the events they hand to the connection
(Hypercorn's own protocol tests do the same); `tests/reliability/test_h2_abuse.py` runs the
race for real under a burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ConnectionState

from apiclub.server.hypercorn_fixes import apply_hypercorn_fixes

pytestmark = pytest.mark.anyio

POST = (
    b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 13\r\n\r\n"
    b'{"name": "x"}'
)


class RecordingApp:
    """Answers 201 to every request and records it; can hold a request until released."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests.append(scope["method"])
        self.started.set()
        while (await receive()).get("more_body"):
            pass
        await self.release.wait()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Connection:
    """What a protocol object handed to its connection: events, and the bytes among them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        self.events.append(event)

    @property
    def written(self) -> bytes:
        return b"".join(event.data for event in self.events if isinstance(event, RawData))


@asynccontextmanager
async def protocol(
    kind: Callable[..., Any], app: RecordingApp, context: WorkerContext
) -> AsyncIterator[tuple[Any, Connection]]:
    """A patched Hypercorn protocol of `kind` over TLS; the block's end awaits its app tasks."""
    apply_hypercorn_fixes()
    connection = Connection()
    async with TaskGroup(asyncio.get_running_loop()) as task_group:
        yield (
            kind(
                ASGIWrapper(app),
                Config(),
                context,
                task_group,
                ConnectionState({}),
                True,
                ("127.0.0.1", 50000),
                ("127.0.0.1", 443),
                connection.send,
            ),
            connection,
        )


async def test_an_h1_request_before_the_stop_is_run_and_kept_alive() -> None:
    app, context = RecordingApp(), WorkerContext(None)
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await h11.handle(RawData(POST))
    assert app.requests == ["POST"]
    assert connection.written.startswith(b"HTTP/1.1 201 ")
    assert b"connection: close" not in connection.written.lower()
    assert connection.events[-1] == Updated(idle=True)


async def test_an_h1_request_arriving_after_the_stop_began_is_not_run() -> None:
    app, context = RecordingApp(), WorkerContext(None)
    await context.terminated.set()
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await h11.handle(RawData(POST))
    assert app.requests == []
    # Closed without a byte: the client knows nothing was accepted and may retry.
    assert connection.events == [Updated(idle=False), Closed()]


async def test_an_h1_request_in_flight_at_the_stop_is_answered_with_connection_close() -> None:
    app, context = RecordingApp(), WorkerContext(None)
    app.release.clear()
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await h11.handle(RawData(POST))
        await app.started.wait()
        await context.terminated.set()
        app.release.set()
    assert app.requests == ["POST"]
    head = connection.written.lower().split(b"\r\n\r\n")[0]
    assert head.startswith(b"http/1.1 201 ")
    assert b"\r\nconnection: close" in head
    assert connection.events[-1] == Closed()


def h2_client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    return client


def h2_request(client: h2.connection.H2Connection) -> bytes:
    headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
    ]
    client.send_headers(client.get_next_available_stream_id(), headers, end_stream=True)
    return client.data_to_send()


def client_events(client: h2.connection.H2Connection, connection: Connection) -> list[Any]:
    return client.receive_data(connection.written)


async def test_an_h2_request_before_the_goaway_is_run() -> None:
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    async with protocol(H2Protocol, app, context) as (server, connection):
        await server.initiate()
        await server.handle(RawData(client.data_to_send() + h2_request(client)))
        await app.started.wait()
        await asyncio.sleep(0.1)  # let the answer out before the connection ends
        await server.handle(Closed())  # ends the protocol's sender task
    assert app.requests == ["GET"]
    answers = [
        e for e in client_events(client, connection) if isinstance(e, h2.events.ResponseReceived)
    ]
    assert [dict(answer.headers)[b":status"] for answer in answers] == [b"201"]


async def test_an_h2_request_read_before_the_stops_goaway_is_dropped_not_a_crash() -> None:
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    async with protocol(H2Protocol, app, context) as (server, connection):
        await server.initiate()
        await server.handle(RawData(client.data_to_send()))
        events = server.connection.receive_data(h2_request(client))
        # Meanwhile, while Hypercorn awaited an earlier event of the same read, the stop began
        # and the connection's last stream ended: Hypercorn sent GOAWAY (h2 state CLOSED).
        await context.terminated.set()
        server.connection.close_connection()
        await server._handle_events(events)
        await server.handle(Closed())  # ends the protocol's sender task
    assert app.requests == []
    assert any(
        isinstance(e, h2.events.ConnectionTerminated) for e in client_events(client, connection)
    )
