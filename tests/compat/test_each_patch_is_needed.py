"""Each compat patch against the same scenario, in place and left out: the patch decides.

Hypercorn's and asyncio's own objects are driven the way their own tests drive them (the
bytes a client sends, a transport in the state a race leaves it in), so the outcome does not
depend on timing; `tests/server/` and `tests/reliability/` run the same fixes over real
sockets. Each test runs twice: with every patch, and with the one it names removed
(`without`), where it must see the upstream bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h2.events
import h2.exceptions
import pytest
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol

from apiclub.compat import patches as compat
from apiclub.compat.tls_buffers import TLS_READ_SIZE
from apiclub.server.config import create_listener_config
from apiclub.server.connections import OPEN_CONNECTIONS
from apiclub.settings import Settings
from tests.compat.helpers import without
from tests.compat.test_hypercorn_stop import (
    POST,
    RecordingApp,
    close_h2,
    h2_client,
    h2_request,
    protocol,
)

pytestmark = pytest.mark.anyio

KIB = 1024


@contextlib.contextmanager
def patched(state: str, name: str) -> Iterator[None]:
    if state == "patched":
        compat.install()
        yield
    else:
        with without(name):
            yield


def bare_tcp_server(**attributes: Any) -> Any:
    """A Hypercorn `TCPServer` with only the attributes a method under test reads."""
    server = TCPServer.__new__(TCPServer)
    server.config = Config()
    server.context = WorkerContext(None)
    for name, value in attributes.items():
        setattr(server, name, value)
    return server


class Recorder:
    """Stands for the connection's protocol: records what the read/write loop hands it."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def handle(self, event: Any) -> None:
        self.events.append(event)


class IdleTask:
    async def stop(self) -> None:
        pass


class WriterClosingWithTlsError:
    """A TLS writer whose close meets the client's next request (hypercorn#261)."""

    def write_eof(self) -> None:
        raise OSError("not on a TLS transport")

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        raise ssl.SSLError(1, "[SSL: APPLICATION_DATA_AFTER_CLOSE_NOTIFY] application data")


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_tls_close_errors(state: str) -> None:
    server = bare_tcp_server(writer=WriterClosingWithTlsError(), idle_task=IdleTask())
    with patched(state, "tls-close-errors"):
        if state == "patched":
            await server._close()  # logged at debug level, dropped
        else:
            with pytest.raises(ssl.SSLError, match="APPLICATION_DATA_AFTER_CLOSE_NOTIFY"):
                await server._close()


class LostTlsWriter:
    """asyncio's TLS transport after the client's reset: its protocol is gone (gh-98539)."""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        raise AttributeError("'NoneType' object has no attribute 'write'")

    async def drain(self) -> None:
        pass


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_writes_after_lost_transport(state: str) -> None:
    recorder = Recorder()
    server = bare_tcp_server(writer=LostTlsWriter(), send_lock=asyncio.Lock(), protocol=recorder)
    with patched(state, "writes-after-lost-transport"):
        if state == "patched":
            await server.protocol_send(RawData(b"answer"))
            assert recorder.events == [Closed()]
        else:
            with pytest.raises(AttributeError, match="write"):
                await server.protocol_send(RawData(b"answer"))


class LostTlsReader:
    def at_eof(self) -> bool:
        return False

    async def read(self, _: int) -> bytes:
        raise AttributeError("'NoneType' object has no attribute '_resume_reading'")


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_reads_after_lost_transport(state: str) -> None:
    recorder = Recorder()
    server = bare_tcp_server(reader=LostTlsReader(), writer=LostTlsWriter(), protocol=recorder)
    with patched(state, "reads-after-lost-transport"):
        if state == "patched":
            await server._read_data()
            assert recorder.events == [Closed()]
        else:
            with pytest.raises(AttributeError, match="_resume_reading"):
                await server._read_data()


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_idle_close_race(state: str) -> None:
    # The stop began as a request started on an idle keep-alive connection (the wait's
    # cancellation lost in 3.11's wait_for, or the request one step after the decision).
    closes: list[str] = []

    async def initiate_server_close() -> None:
        closes.append("closed under the request")

    server = bare_tcp_server(
        protocol=SimpleNamespace(protocol=SimpleNamespace(stream=object())),  # in flight
        _initiate_server_close=initiate_server_close,
    )
    await server.context.terminated.set()
    with patched(state, "idle-close-race"):
        await server._idle_timeout()
    assert closes == ([] if state == "patched" else ["closed under the request"])


RAPID_RESET = textwrap.dedent(
    """
    import asyncio, sys
    import hyperframe.frame
    from hypercorn.asyncio.worker_context import WorkerContext
    from hypercorn.events import Closed, RawData
    from hypercorn.protocol.h2 import H2Protocol
    from apiclub.compat import patches as compat
    from tests.compat.test_hypercorn_stop import RecordingApp, h2_client, protocol

    HEADERS = [(":method", "GET"), (":scheme", "https"), (":authority", "x"), (":path", "/")]

    async def main():
        compat.install(skip=frozenset(sys.argv[1:]))
        client = h2_client()
        for _ in range(40):  # each request reset at once, all in one write (CVE-2023-44487)
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, HEADERS, end_stream=True)
            client.reset_stream(stream_id)
        async with protocol(H2Protocol, RecordingApp(), WorkerContext(None)) as (server, out):
            server.config.keep_alive_max_requests = 10
            await server.initiate()
            await asyncio.wait_for(server.handle(RawData(client.data_to_send())), 10)
            await asyncio.wait_for(server.handle(Closed()), 10)
        data = memoryview(out.written)
        while data:  # the last stream id of each GOAWAY the server sent
            frame, length = hyperframe.frame.Frame.parse_frame_header(data[:9])
            if isinstance(frame, hyperframe.frame.GoAwayFrame):
                frame.parse_body(data[9 : 9 + length])
                print(frame.last_stream_id)
            data = data[9 + length :]

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("state", ["patched", "without"])
def test_h2_stream_limit(state: str) -> None:
    # In a process of its own: the reset streams' app tasks run as in a server, not in the
    # test runner's loop.
    left_out = ["h2-stream-limit"] if state == "without" else []
    result = subprocess.run(
        [sys.executable, "-c", RAPID_RESET, *left_out],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    # One GOAWAY naming the last stream started: the 11th (the limit, plus the one past it
    # at which Hypercorn itself closes). Upstream names the highest stream h2 parsed in the
    # read, so the client cannot know which of the 40 it may retry (RFC 9113 6.8).
    assert result.stdout.split() == (["21"] if state == "patched" else ["79"])


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_h2_requests_after_goaway(state: str) -> None:
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    with patched(state, "h2-requests-after-goaway"):
        async with protocol(H2Protocol, app, context) as (server, _):
            await server.initiate()
            await server.handle(RawData(client.data_to_send()))
            events = server.connection.receive_data(h2_request(client, "GET"))
            await close_h2(server, context, "stop")
            if state == "patched":
                await server._handle_events(events)
            else:
                with pytest.raises(h2.exceptions.ProtocolError):
                    await server._handle_events(events)
            await server.handle(Closed())
    assert app.requests == []


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_track_connections(state: str) -> None:
    """A stop cancels the connections the registry knows; without the patch it knows none."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hanging_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            arrived.set()
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    with patched(state, "track-connections"):
        compat.install(OPEN_CONNECTIONS)
        sock = socket.create_server(("127.0.0.1", 0))
        config = create_listener_config(Settings(), sock, None)
        config.graceful_timeout = 1
        stop = asyncio.Event()
        serving = asyncio.create_task(
            hypercorn_serve(hanging_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        )
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await asyncio.wait_for(arrived.wait(), 10)
        cancelled = OPEN_CONNECTIONS.cancel(config)
        try:
            if state == "patched":
                assert cancelled == 1
                await asyncio.wait_for(reader.read(), 5)  # ends: the connection is closed
            else:
                assert cancelled == 0
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(), 0.5)  # still open
        finally:
            release.set()
            writer.close()
            stop.set()
            await asyncio.wait_for(serving, 10)


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_h11_head_limit(state: str) -> None:
    app, context = RecordingApp(), WorkerContext(None)
    padding = b"X-Padding: " + b"a" * (40 * KIB) + b"\r\n"
    head = POST.replace(b"\r\n", b"\r\n" + padding, 1)
    with patched(state, "h11-head-limit"):
        async with protocol(H11Protocol, app, context) as (h11, connection):
            await h11.handle(RawData(head))  # one read, as Hypercorn's 64 KiB reads do
    if state == "patched":
        assert connection.written.startswith(b"HTTP/1.1 431 ")
        assert app.requests == []
    else:
        assert connection.written.startswith(b"HTTP/1.1 201 ")


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_h2_header_list_limit(state: str) -> None:
    app, context = RecordingApp(), WorkerContext(None)
    client = h2_client()
    headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
        ("x-padding", "a" * (40 * KIB)),
    ]
    client.send_headers(1, headers, end_stream=True)
    config = Config()
    config.h2_max_header_list_size = 16 * KIB  # what apiclub's listener advertises
    with patched(state, "h2-header-list-limit"):
        async with protocol(H2Protocol, app, context, config) as (server, _):
            await server.initiate()
            await server.handle(RawData(client.data_to_send()))
            await asyncio.sleep(0.05)
            await server.handle(Closed())
    assert app.requests == ([] if state == "patched" else ["GET"])


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_h11_coalesce(state: str) -> None:
    app, context = RecordingApp(), WorkerContext(None)
    with patched(state, "h11-coalesce"):
        async with protocol(H11Protocol, app, context) as (h11, connection):
            await h11.handle(RawData(POST))
    writes = [event.data for event in connection.events if isinstance(event, RawData)]
    assert b"".join(writes).startswith(b"HTTP/1.1 201 ")
    # Head and body in one write (one TLS record); upstream writes the head on its own.
    assert writes[0].endswith(b"\r\n\r\n") == (state == "without")
    assert (b"{}" in writes[0]) == (state == "patched")


# The protocols never get a socket, so their unused transports are collected unclosed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("state", ["patched", "without"])
async def test_tls_read_buffers(state: str) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context()
    with patched(state, "tls-read-buffers"):
        first, second = (
            asyncio.sslproto.SSLProtocol(loop, asyncio.Protocol(), context, None) for _ in range(2)
        )
        buffers = first.get_buffer(-1), second.get_buffer(-1)
        lengths = [len(buffer) for buffer in buffers]
        shared = buffers[0].obj is buffers[1].obj
        del first, second, buffers
        gc.collect()  # their unused transports warn now, under this test's filter
    if state == "patched":
        assert lengths == [TLS_READ_SIZE, TLS_READ_SIZE]
        assert shared  # one per event loop's thread
    else:
        assert lengths == [256 * KIB, 256 * KIB]  # asyncio's own, per connection
        assert not shared


@pytest.mark.parametrize("state", ["patched", "without"])
async def test_request_deadline(
    state: str, files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    from tests.server.conftest import serving
    from tests.server.test_request_deadline import BODY, drip_until_closed, short_deadline
    from tests.server.test_request_deadline import POST as DRIPPED_POST

    with patched(state, "request-deadline"):
        async with serving(short_deadline(files_settings), redirect=False) as server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
            )
            writer.write(DRIPPED_POST)
            # 92 body bytes at 0.05 s each take 4.6 s; the deadline is 1 s + 92/1024 s.
            seconds, received = await asyncio.wait_for(
                drip_until_closed(reader, writer, BODY, 0.05), 30
            )
    if state == "patched":
        assert seconds < 3.0 and b"201" not in received, (seconds, received)
    else:
        # Each byte restarts Hypercorn's read timeout: the whole drip is read and served.
        assert seconds > 4.0 and b" 201 " in received, (seconds, received)
