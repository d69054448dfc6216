"""Hypercorn's own HTTP/1.1 and HTTP/2 protocol objects, patched, at the instant a stop begins.

A race over sockets cannot be staged deterministically, so these drive the real protocol
classes with the bytes a client sends and collect the events they hand to the connection
(Hypercorn's own protocol tests do the same); `tests/reliability/test_h2_abuse.py` runs the
race for real under a burst. The cut of silent TLS clients at the end of a stop runs over
real sockets (`tests/reliability/test_stop_deadline.py` runs it through the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import h2.config
import h2.connection
import h2.events
import hyperframe.frame
import pytest
import trustme
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ConnectionState

from apiclub.compat import patches as compat
from apiclub.compat.transports import socket_transport as _socket_transport
from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings
from tests.server.conftest import running_server

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
    kind: Callable[..., Any],
    app: RecordingApp,
    context: WorkerContext,
    config: Config | None = None,
) -> AsyncIterator[tuple[Any, Connection]]:
    """A patched Hypercorn protocol of `kind` over TLS; the block's end awaits its app tasks."""
    compat.install()
    connection = Connection()
    async with TaskGroup(asyncio.get_running_loop()) as task_group:
        yield (
            kind(
                ASGIWrapper(app),
                config or Config(),
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
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await h11.handle(RawData(POST))  # a keep-alive connection that has served one
        while Updated(idle=True) not in connection.events:
            await asyncio.sleep(0.001)
        answered = len(connection.events)
        await context.terminated.set()
        await h11.handle(RawData(POST))
    assert app.requests == ["POST"]
    # Closed without a byte: the client knows nothing was accepted and may retry.
    assert connection.events[answered:] == [Updated(idle=False), Closed()]


async def test_the_first_request_of_a_connection_accepted_at_the_stop_is_answered() -> None:
    # Accepted just before the stop (a reload: the kernel's queue is shared with the next
    # generation): its client sent this request before it could know; closing would fail it.
    app, context = RecordingApp(), WorkerContext(None)
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await context.terminated.set()
        await h11.handle(RawData(POST))
    assert app.requests == ["POST"]
    assert connection.written.startswith(b"HTTP/1.1 201 ")
    assert b"connection: close" in connection.written.lower()


async def test_a_connection_opened_after_the_stop_began_is_refused_unstarted() -> None:
    # Hypercorn's stop does not wait for it: its request would meet a closed database.
    app, context = RecordingApp(), WorkerContext(None)
    await context.terminated.set()
    async with protocol(H11Protocol, app, context) as (h11, connection):
        await h11.handle(RawData(POST))
    assert app.requests == []
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


# Over half the 65,535-byte default window: its credit shows as a WINDOW_UPDATE at once.
H2_BODY = b"x" * 40_000


def h2_request(client: h2.connection.H2Connection, method: str = "GET") -> bytes:
    """The bytes of a GET, or of a POST carrying `H2_BODY` over several DATA frames."""
    headers = [
        (":method", method),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
    ]
    stream_id = client.get_next_available_stream_id()
    if method == "GET":
        client.send_headers(stream_id, headers, end_stream=True)
        return client.data_to_send()
    client.send_headers(stream_id, [*headers, ("content-length", str(len(H2_BODY)))])
    size = client.max_outbound_frame_size
    for start in range(0, len(H2_BODY), size):
        end_stream = start + size >= len(H2_BODY)
        client.send_data(stream_id, H2_BODY[start : start + size], end_stream=end_stream)
    return client.data_to_send()


def client_events(client: h2.connection.H2Connection, connection: Connection) -> list[Any]:
    return client.receive_data(connection.written)


def frame_types(written: bytes) -> list[str]:
    """The types of the HTTP/2 frames in `written`, parsed without a client's state machine.

    h2's client treats any frame after a GOAWAY (here a WINDOW_UPDATE) as a protocol error.
    """
    types, data = [], memoryview(written)
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(data[:9])
        types.append(type(frame).__name__)
        data = data[9 + length :]
    return types


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


async def close_h2(server: Any, context: WorkerContext, how: str) -> None:
    """Close an HTTP/2 connection `how`, after the read in flight was filtered by h2_limits.py."""
    if how == "stop":
        # The stop began and the connection's last stream ended: Hypercorn sent GOAWAY.
        await context.terminated.set()
        server.connection.close_connection()
    elif how == "goaway":
        # The same, but the read was filtered before the stop began: its GOAWAY went out while
        # Hypercorn awaited an earlier event of the read (the stop flag is no longer read).
        server.connection.close_connection()
    else:
        # The keep-alive timeout decided to close this idle connection.
        server._apiclub_closing = True


@pytest.mark.parametrize("how", ["stop", "goaway", "keep_alive"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_h2_request_read_as_the_connection_closes_is_dropped_not_a_crash(
    method: str, how: str
) -> None:
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    async with protocol(H2Protocol, app, context) as (server, connection):
        await server.initiate()
        await server.handle(RawData(client.data_to_send()))
        window = server.connection.inbound_flow_control_window
        events = server.connection.receive_data(h2_request(client, method))
        await close_h2(server, context, how)
        # Without the fix a POST's DATA raises KeyError here (Hypercorn's `self.streams[1]`).
        await server._handle_events(events)
        await server.handle(Closed())  # ends the protocol's sender task
    assert app.requests == []
    # The dropped body is credited back to the connection's window (h2 sends the credit in
    # steps of half a window, so some of it may wait for the next DATA).
    assert server.connection.inbound_flow_control_window > window - len(H2_BODY)
    if how != "keep_alive":
        assert "GoAwayFrame" in frame_types(connection.written)


async def test_frames_after_the_stops_goaway_are_discarded_not_a_close() -> None:
    # The client sent a request, and a PING, before it read the stop's GOAWAY. h2 rejects any
    # frame on a closed connection; Hypercorn then closed the socket with them unread, which the
    # kernel answers with a reset that fails the client's streams already answered.
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    async with protocol(H2Protocol, app, context) as (server, connection):
        await server.initiate()
        await server.handle(RawData(client.data_to_send()))
        await close_h2(server, context, "stop")
        client.ping(b"12345678")
        await server.handle(RawData(h2_request(client, "POST") + client.data_to_send()))
        assert Closed() not in connection.events  # the connection waits for the client's close
        await server.handle(Closed())  # ends the protocol's sender task
    assert app.requests == []


class LifespanApp:
    """Answers lifespan events and records the shutdown, as the API's database close would."""

    def __init__(self) -> None:
        self.shut_down = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        self.shut_down = True
        await send({"type": "lifespan.shutdown.complete"})


def silent_tls_client(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A verified TLS connection that then neither reads nor writes (no close_notify back)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


async def test_a_stop_cuts_silent_idle_tls_clients_at_once_and_runs_the_lifespan_shutdown(
    files_settings: Settings, trust_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp()
    settings = replace(files_settings, http_port=0, grace_period=0.5)
    server = Server(settings, app=app, api_socket=bind_socket("127.0.0.1", 0, option="test"))
    clients = []
    try:
        # The block's end stops the server and re-raises whatever `serve()` raised.
        async with running_server(server):
            for _ in range(3):
                clients.append(
                    await asyncio.to_thread(silent_tls_client, server.api_port, trust_context)
                )
    finally:
        for client in clients:
            client.close()
    assert app.shut_down
    # Idle: cut CLOSE_NOTIFY_WAIT after their close_notify went unanswered, not left for the
    # last-resort cut (launcher.STOP_MARGIN after the grace period, with a warning).
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


@asynccontextmanager
async def closed_twice_under_a_silent_client(
    trust_ca: trustme.CA, trust_context: ssl.SSLContext
) -> AsyncIterator[tuple[asyncio.StreamWriter, asyncio.WriteTransport]]:
    """A server-side TLS stream closed twice, as Hypercorn does, whose client stays silent.

    Yields the stream and the TCP transport under it, found before the closes (as the
    patched `TCPServer.run` finds it).
    """
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trust_ca.issue_cert("localhost").configure_cert(server_context)
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=server_context)
    port = listener.sockets[0].getsockname()[1]
    client = await asyncio.to_thread(silent_tls_client, port, trust_context)
    writer = await accepted.get()
    tcp = _socket_transport(writer.transport)
    try:
        writer.close()  # TCPServer._initiate_server_close
        writer.close()  # TCPServer._close
        yield writer, tcp
    finally:
        client.close()
        listener.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_cutting_the_tcp_transport_under_tls_ends_the_wait_for_close_notify(
    trust_ca: trustme.CA, trust_context: ssl.SSLContext
) -> None:
    async with closed_twice_under_a_silent_client(trust_ca, trust_context) as (writer, tcp):
        assert tcp is not writer.transport
        tcp.abort()
        await writer.wait_closed()  # without the cut: asyncio's 30 s SSL_SHUTDOWN_TIMEOUT
        assert tcp.is_closing()


async def test_after_two_closes_the_tls_transports_own_abort_cuts_nothing(
    trust_ca: trustme.CA, trust_context: ssl.SSLContext
) -> None:
    # The premise of `_socket_transport` (CPython gh-98539). If this starts failing, CPython
    # fixed it and `abort_connections` may call `writer.transport.abort()` again.
    async with closed_twice_under_a_silent_client(trust_ca, trust_context) as (writer, tcp):
        # 3.11.7 returns having done nothing; Debian 12's 3.11.2 raises, its protocol gone.
        with contextlib.suppress(AttributeError):
            writer.transport.abort()
        assert not tcp.is_closing()
        tcp.abort()  # so that the block's end does not wait 30 s


class _GoneTlsReader:
    """A reader whose TLS transport lost its protocol (CPython gh-98539), as in a flood."""

    def at_eof(self) -> bool:
        return False

    async def read(self, _: int) -> bytes:
        raise AttributeError("'NoneType' object has no attribute '_resume_reading'")


class _Writer:
    def __init__(self, *, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def handle(self, event: Event) -> None:
        self.events.append(event)


def _read_loop(*, closing: bool) -> tuple[Any, _Recorder]:
    from hypercorn.asyncio.tcp_server import TCPServer

    compat.install()
    server = TCPServer.__new__(TCPServer)
    server.reader = _GoneTlsReader()  # type: ignore[assignment]
    server.writer = _Writer(closing=closing)  # type: ignore[assignment]
    server.config = Config()
    recorder = _Recorder()
    server.protocol = recorder  # type: ignore[assignment]
    return server, recorder


async def test_a_read_from_a_closed_tls_transport_is_a_close() -> None:
    server, recorder = _read_loop(closing=True)
    await server._read_data()
    assert recorder.events == [Closed()]


async def test_the_same_error_on_an_open_transport_is_not_hidden() -> None:
    server, _ = _read_loop(closing=False)
    with pytest.raises(AttributeError, match="_resume_reading"):
        await server._read_data()
