"""The port-80 server (httptools) on a real socket: keep-alive, limits, timeouts, stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from apiclub.server import redirect_server
from apiclub.server.limits import ConnectionCap, RequestDeadline
from apiclub.server.redirect import RedirectApp
from apiclub.server.sockets import bind_socket

pytestmark = pytest.mark.anyio

HOSTS = ("localhost", "127.0.0.1")
GET = b"GET /task/?page=2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
LOCATION = b"location: https://localhost:8443/task/?page=2\r\n"


class Listener:
    def __init__(self, port: int, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
        self.port, self.stop, self.task = port, stop, task

    async def connect(self, sent: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(sent)
        return reader, writer


@contextlib.asynccontextmanager
async def listening(
    grace: float = 5,
    deadline: RequestDeadline = redirect_server.DEFAULT_DEADLINE,
    cap: ConnectionCap | None = None,
) -> AsyncIterator[Listener]:
    sock = bind_socket("127.0.0.1", 0, option="test")
    stop = asyncio.Event()
    app = RedirectApp(HOSTS, 8443)
    serving = redirect_server.serve_redirects(app, sock, stop, grace, cap, deadline)
    task = asyncio.create_task(serving)
    await asyncio.sleep(0)
    try:
        yield Listener(sock.getsockname()[1], stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=grace + 5)


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), timeout=10) == b""
    except ConnectionError:
        return True


async def test_keep_alive_and_pipelining_answer_every_request_in_order() -> None:
    async with listening() as server:
        reader, writer = await server.connect(GET + b"HEAD /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first, second = await read_answer(reader), await read_answer(reader)
        writer.write(b"POST /b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
        third = await read_answer(reader)
        writer.close()
    assert first.startswith(b"HTTP/1.1 301 Moved Permanently\r\n") and LOCATION in first
    assert b"date: " in first and b"connection: close" not in first
    assert second.startswith(b"HTTP/1.1 301 ") and b"https://localhost:8443/a\r\n" in second
    assert third.startswith(b"HTTP/1.1 308 ") and b"https://127.0.0.1:8443/b\r\n" in third


async def test_http_1_0_gets_its_answer_then_a_close() -> None:
    async with listening() as server:
        reader, writer = await server.connect(b"GET /x HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = await read_answer(reader)
        assert await closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 301 ") and b"connection: close\r\n" in answer


async def test_a_head_dripped_past_the_limit_is_431_and_closed() -> None:
    async with listening() as server:
        reader, writer = await server.connect(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        for _ in range(20):  # 20 KiB in 1 KiB writes: the parser holds an unfinished header
            writer.write(b"a" * 1024)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert await closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"request line and headers exceed 16384 bytes" in answer


async def test_a_head_under_the_limit_is_answered() -> None:
    async with listening() as server:
        reader, writer = await server.connect(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 15_000 + b"\r\n\r\n"
        )
        answer = await read_answer(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 301 ")


async def test_a_body_over_the_limit_is_413_and_a_small_one_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redirect_server, "MAX_DISCARDED_BODY", 100)
    async with listening() as server:
        reader, writer = await server.connect(
            b"PUT /s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"
        )
        writer.write(b"x" * 100)
        small = await read_answer(reader)
        writer.write(b"PUT /l HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n\r\n")
        writer.write(b"x" * 101)
        large = await read_answer(reader)
        assert await closed(reader)
        writer.close()
    assert small.startswith(b"HTTP/1.1 308 ")
    assert large.startswith(b"HTTP/1.1 413 ") and b"port 80 only redirects" in large


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["two-hosts", "tls-hello", "two-lengths"],
)
async def test_malformed_requests_get_400_naming_the_problem(request_bytes: bytes) -> None:
    async with listening() as server:
        reader, writer = await server.connect(request_bytes)
        answer = await asyncio.wait_for(reader.read(65536), timeout=10)
        assert await closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b'"detail": "' in answer and b"connection: close" in answer


async def test_requests_per_connection_are_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redirect_server, "MAX_REQUESTS_PER_CONNECTION", 3)
    async with listening() as server:
        reader, writer = await server.connect(GET * 4)
        answers = [await read_answer(reader) for _ in range(3)]
        assert await closed(reader)
        writer.close()
    assert [b"connection: close" in answer for answer in answers] == [False, False, True]


async def test_idle_and_stalled_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redirect_server, "KEEP_ALIVE_TIMEOUT", 0.2)
    monkeypatch.setattr(redirect_server, "READ_TIMEOUT", 0.4)
    async with listening() as server:
        idle_reader, idle = await server.connect(GET)
        await read_answer(idle_reader)
        stalled_reader, stalled = await server.connect(b"GET / HTTP/1.1\r\nHo")
        assert await closed(idle_reader)
        assert await closed(stalled_reader)
        idle.close()
        stalled.close()


async def drip(writer: asyncio.StreamWriter, head: bytes, interval: float) -> None:
    """Write `head` a byte every `interval` seconds, until written or the server closes."""
    for index in range(len(head)):
        if writer.is_closing():
            return
        writer.write(head[index : index + 1])
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(interval)


async def test_a_head_dripped_faster_than_the_read_timeout_is_still_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every read comes within READ_TIMEOUT of the last, but the head never ends: the request's
    # own deadline (from its first byte, nginx's client_header_timeout) closes it.
    async with listening(deadline=RequestDeadline(0.5, 1024, 1.0)) as server:
        reader, writer = await server.connect()
        head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Drip: " + b"a" * 200  # 20 s at 0.1 s
        dripping = asyncio.create_task(drip(writer, head, 0.1))
        try:
            assert await asyncio.wait_for(reader.read(), timeout=30) == b""
            assert not dripping.done()  # closed while the drip still had bytes to send
        finally:
            dripping.cancel()
            writer.close()


async def test_a_dripped_head_complete_within_the_read_timeout_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redirect_server, "READ_TIMEOUT", 10)
    async with listening() as server:
        reader, writer = await server.connect()
        await drip(writer, GET, 0.01)
        answer = await read_answer(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 301 ") and LOCATION in answer


async def test_a_connection_within_its_timeouts_stays_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redirect_server, "KEEP_ALIVE_TIMEOUT", 5)
    async with listening() as server:
        reader, writer = await server.connect(GET)
        await read_answer(reader)
        await asyncio.sleep(0.5)
        writer.write(GET)
        answer = await read_answer(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 301 ")


async def test_stop_closes_idle_connections_and_answers_the_one_being_read() -> None:
    async with listening() as server:
        idle_reader, idle = await server.connect(GET)
        await read_answer(idle_reader)
        busy_reader, busy = await server.connect(b"GET /late HTTP/1.1\r\nHost: local")
        await asyncio.sleep(0.1)
        server.stop.set()
        assert await closed(idle_reader)
        busy.write(b"host\r\n\r\n")
        late = await read_answer(busy_reader)
        assert await closed(busy_reader)
        await asyncio.wait_for(server.task, timeout=10)
        with pytest.raises(ConnectionError):
            await server.connect()
        idle.close()
        busy.close()
    assert late.startswith(b"HTTP/1.1 301 ") and b"connection: close" in late


async def test_stop_cuts_what_remains_after_the_grace_period() -> None:
    async with listening(grace=0.3) as server:
        reader, writer = await server.connect(b"GET / HTTP/1.1\r\n")
        await asyncio.sleep(0.1)
        server.stop.set()
        await asyncio.wait_for(server.task, timeout=10)
        assert await closed(reader)
        writer.close()


CHUNKED_HEAD = b"POST /t HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_a_trailer_past_the_head_limit_is_431_and_closed() -> None:
    # Issue 14: a trailer field fed for ever (64 MiB took 7.5 s of CPU); here 1 MiB of it.
    async with listening() as server:
        reader, writer = await server.connect(CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Pad: ")
        sent, answer = 0, b""
        while sent < 1024 * 1024 and not answer:
            writer.write(b"y" * 4096)
            sent += 4096
            await writer.drain()
            # Stop sending once answered: bytes the server never reads would reset the answer.
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.02)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), (sent, answer)
    assert sent <= 24 * 1024  # cut within a slice of the 16 KiB limit
    body = await reader.read()
    assert b"trailers exceed 16384 bytes" in body


async def test_trailers_within_the_limit_are_ignored_even_a_host() -> None:
    async with listening() as server:
        trailers = b"0\r\nHost: evil.example\r\nX-Pad: " + b"y" * 8000 + b"\r\n\r\n"
        reader, writer = await server.connect(CHUNKED_HEAD + b"3\r\nabc\r\n" + trailers)
        answer = await read_answer(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 308 "), answer
    assert b"location: https://localhost:8443/t\r\n" in answer
    assert b"evil" not in answer
