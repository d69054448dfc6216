"""A stop with nothing in flight is prompt; a request in flight still gets its grace period.

A browser keeps a pool of idle keep-alive connections open (HTTP/1.1 and HTTP/2) and answers
neither close_notify nor GOAWAY while idle: before, such a pool held every SIGTERM for the
grace period plus the 5 s cut (15 s by default), past a container runtime's 10 s stop timeout.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.processes import Served, served

PROMPT = 1.0
"""Seconds: the stop of an idle pool must end within this (issue #15)."""
GRACE = 10
SLOW_BODY = 1.5
"""Seconds the in-flight request's client waits, after SIGTERM, before its body's end."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with served(tmp_path, "--grace-period", str(GRACE)) as running:
        yield running


def idle_pool(server: Served, stack: ExitStack) -> list[str]:
    """Two HTTP/1.1 and two HTTP/2 connections that each served a request, then stay idle."""
    context = ssl.create_default_context(cafile=str(server.root))
    versions = []
    for http2 in (False, False, True, True):
        client = stack.enter_context(httpx.Client(verify=context, http2=http2, timeout=10))
        answer = client.get(f"{server.url}/")
        assert answer.status_code == 200
        versions.append(answer.http_version)
    return versions


def test_an_idle_keep_alive_pool_stops_within_a_second(server: Served) -> None:
    with ExitStack() as stack:
        assert idle_pool(server, stack) == ["HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/2"]
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.process.wait(timeout=GRACE + 10)
        took = time.monotonic() - began
    log = server.log()
    sys.stdout.write(f"idle pool (2 HTTP/1.1 + 2 HTTP/2): SIGTERM to exit {took:.2f} s\n")
    assert status == 0, log[-3000:]
    assert took < PROMPT, f"the stop took {took:.2f} s\n{log[-3000:]}"
    assert "still open" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_request_in_flight_beside_the_idle_pool_still_completes(
    server: Served, tmp_path: Path
) -> None:
    context = ssl.create_default_context(cafile=str(server.root))
    body = b'{"name": "in flight at the stop"}'
    head = (
        b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with ExitStack() as stack:
        idle_pool(server, stack)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=GRACE)
        slow = stack.enter_context(context.wrap_socket(raw, server_hostname="localhost"))
        slow.sendall(head + body[:5])
        time.sleep(0.2)  # the head reaches the server: the request has started
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(SLOW_BODY)
        assert server.process.poll() is None, "the stop did not wait for the request in flight"
        slow.sendall(body[5:])
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := slow.recv(4096)):
            answer += chunk
        status = server.process.wait(timeout=GRACE + 10)
        took = time.monotonic() - began
    log = server.log()
    assert answer.startswith(b"HTTP/1.1 201 "), (answer, log[-3000:])
    assert b"connection: close" in answer.lower(), answer
    assert status == 0, log[-3000:]
    assert SLOW_BODY <= took < GRACE, took
    with sqlite3.connect(tmp_path / "api.db") as db:
        names = [row[0] for row in db.execute("SELECT name FROM task")]
    assert names == ["in flight at the stop"]
