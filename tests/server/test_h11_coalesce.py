"""An HTTP/1.1 response over TLS leaves in one record: head and body are written together."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import replace

import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

APPLICATION_DATA = 23  # TLS record content type (RFC 8446 5.1)
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


class RawTLSClient:
    """A blocking TLS client over memory BIOs that sees every record the server sends."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.raw = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._receive()
        self._flush()

    def _flush(self) -> None:
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        self.raw += data
        self.incoming.write(data)

    def exchange(self) -> tuple[bytes, int]:
        """Send one request; the whole answer and the application-data records it took."""
        self.raw = b""
        self.tls.write(REQUEST)
        self._flush()
        answer = b""
        while not complete(answer):
            try:
                answer += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._receive()
        return answer, count_records(self.raw)

    def close(self) -> None:
        self.sock.close()


def complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.lower().split(b"\r\n")
    length = next(int(line[15:]) for line in lines if line.startswith(b"content-length:"))
    return len(body) >= length


def count_records(raw: bytes) -> int:
    count = 0
    while len(raw) >= 5:
        length = int.from_bytes(raw[3:5], "big")
        count += raw[0] == APPLICATION_DATA
        raw = raw[5 + length :]
    return count


def two_requests(port: int, context: ssl.SSLContext) -> list[tuple[bytes, int]]:
    client = RawTLSClient(port, context)
    try:
        # The first answer may share its reads with TLS 1.3 session tickets: look at the second.
        return [client.exchange(), client.exchange()]
    finally:
        client.close()


async def test_head_and_body_leave_in_one_tls_record(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    trust_context.set_alpn_protocols(["http/1.1"])
    async with serving(replace(files_settings, http_port=0), redirect=False) as server:
        answers = await asyncio.to_thread(two_requests, server.api_port, trust_context)
    (_, _), (answer, records) = answers
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"status":"ok"}')
    assert records == 1
