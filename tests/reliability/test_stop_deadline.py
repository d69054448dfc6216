"""Clients that go silent cannot hold a stopping server past its deadline.

asyncio waits up to 30 s for a TLS peer's close_notify (SSL_SHUTDOWN_TIMEOUT), longer than a
container runtime's 10 s stop timeout; a request whose body never comes would wait for the
30 s read timeout. At SIGTERM the server closes connections with no request in flight at once
(their TCP socket is cut if the client does not answer close_notify within a moment), gives
in-flight requests the grace period, then cuts what is left (`launcher._finish`, one warning)
and exits 0. The bound below is not a speed check: it sits between that deadline and the 30 s
waits that would otherwise hold the exit. Clients that answer close_notify are not cut.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.processes import Served, served

GRACE = 2
EXIT_BOUND = GRACE + 15
"""Seconds the process may take to exit: its deadline (grace + 7 s) with room for a busy CI
machine, and well under the 30 s waits it must not sit out."""
CLIENTS = 5
CUT = re.compile(
    r"WARNING apiclub.server: (\d+) connection\(s\) still open \d+ s after the stop; cut"
)


def silent_tls_client(server: Served, first_bytes: bytes) -> ssl.SSLSocket:
    """A verified TLS connection that sends `first_bytes`, then neither reads nor writes."""
    context = ssl.create_default_context(cafile=str(server.root))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname="localhost")
    if first_bytes:
        tls.sendall(first_bytes)
    return tls


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with served(tmp_path, "--grace-period", str(GRACE)) as running:
        yield running


@pytest.mark.parametrize(
    ("first_bytes", "in_flight"),
    [
        pytest.param(b"", False, id="handshake-only"),
        pytest.param(b"GET /task/ HTTP/1.1\r\nHost: localhost\r\n", False, id="half-a-head"),
        pytest.param(
            b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"name": ',
            True,
            id="body-stops",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", False, id="never-reads-its-answer"
        ),
    ],
)
def test_silent_tls_clients_do_not_hold_the_exit(
    server: Served, first_bytes: bytes, in_flight: bool
) -> None:
    with ExitStack() as clients:
        for _ in range(CLIENTS):
            clients.enter_context(silent_tls_client(server, first_bytes))
        took = stop_within_bound(server)
    log = server.log()
    assert server.process.returncode == 0, log[-3000:]
    # Nothing is left for the last-resort cut (launcher._finish): idle connections were
    # closed at once, a stalled request at the end of its grace period; no traceback from
    # either cut (InvalidStateError, gh-113538).
    assert CUT.findall(log) == [], log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]
    # Only a request in flight holds the stop for its grace period.
    assert (took >= GRACE) is in_flight, (took, log[-3000:])


def test_clients_that_answer_close_notify_are_closed_without_a_cut(server: Served) -> None:
    with ExitStack() as clients, ThreadPoolExecutor(CLIENTS) as pool:
        sockets = [clients.enter_context(silent_tls_client(server, b"")) for _ in range(CLIENTS)]
        closes = [pool.submit(answer_close_notify, tls) for tls in sockets]
        stop_within_bound(server)
        assert [close.result(timeout=EXIT_BOUND) for close in closes] == [b""] * CLIENTS
    log = server.log()
    assert server.process.returncode == 0, log[-3000:]
    assert CUT.findall(log) == [], log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_without_clients_the_stop_is_prompt_too(server: Served) -> None:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=EXIT_BOUND) == 0, server.log()[-3000:]
    assert CUT.findall(server.log()) == [], server.log()[-3000:]


def answer_close_notify(tls: ssl.SSLSocket) -> bytes:
    """Wait for the server's close_notify (read as b""), then answer it, as a polite client."""
    tls.settimeout(EXIT_BOUND)
    data = tls.recv(1)
    tls.unwrap()
    return data


def stop_within_bound(server: Served) -> float:
    """SIGTERM, wait for the exit: how many seconds it took."""
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=EXIT_BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_BOUND} s after SIGTERM; log:\n{server.log()[-3000:]}")
    return time.monotonic() - began
