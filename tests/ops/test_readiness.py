"""/readyz turns 503 within 100 ms of SIGTERM while an in-flight request finishes; /livez
answers 200 until the process exits."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ops.helpers import Served, served

pytestmark = pytest.mark.timeout(120)

BODY = json.dumps({"name": "finished during the drain"}).encode()


def probe(port: int, path: str) -> int | None:
    """The status of GET path on the admin listener, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:
        return None


def start_slow_post(api: Served) -> ssl.SSLSocket:
    """A POST whose body is half sent: in flight until the rest comes."""
    raw = socket.create_connection(("127.0.0.1", api.port))
    tls = api.client_context().wrap_socket(raw, server_hostname="localhost")
    head = (
        f"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    tls.sendall(head + BODY[:5])
    return tls


@pytest.mark.parametrize("workers", [1, 2])
def test_readyz_goes_503_at_once_on_sigterm_while_requests_finish(
    tmp_path: Path, workers: int
) -> None:
    with served(tmp_path / "data", "--workers", str(workers), "--grace-period", "10") as api:
        assert probe(api.admin_port, "/readyz") == 200
        assert probe(api.admin_port, "/livez") == 200
        slow = start_slow_post(api)
        time.sleep(0.3)  # the request has reached the app
        api.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        status = probe(api.admin_port, "/readyz")
        while status == 200 and time.monotonic() - signalled < 2:
            status = probe(api.admin_port, "/readyz")
        took = time.monotonic() - signalled
        assert status == 503, status
        assert took < 0.1, f"/readyz answered 503 {took * 1000:.0f} ms after SIGTERM"
        assert probe(api.admin_port, "/livez") == 200, "alive while draining"
        assert api.process.poll() is None

        # The in-flight request finishes and gets its answer.
        slow.sendall(BODY[5:])
        answer = slow.recv(65536).decode()
        slow.close()
        assert answer.startswith("HTTP/1.1 201"), answer
        assert api.process.wait(timeout=30) == 0, api.log()
        assert probe(api.admin_port, "/livez") is None, "gone with the process"


def test_readyz_answers_200_when_serving(tmp_path: Path) -> None:
    """The twin: no stop, no 503; unknown paths and methods get their 4xx."""
    with served(tmp_path / "data") as api:
        for _ in range(20):
            assert probe(api.admin_port, "/readyz") == 200
        assert probe(api.admin_port, "/nothing") == 404
        request = urllib.request.Request(f"http://127.0.0.1:{api.admin_port}/readyz", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=2)  # noqa: S310
        refused.value.close()
        assert refused.value.code == 405


@pytest.mark.parametrize("workers", [1, 2])
def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Path, workers: int) -> None:
    data = tmp_path / "data"
    with served(data, "--workers", str(workers)) as api:
        assert probe(api.admin_port, "/readyz") == 200
        for name in ("api.db", "api.db-wal", "api.db-shm"):
            (data / name).unlink(missing_ok=True)
        status, body = api.admin("/readyz")
        assert status == 503, body
        assert "the database does not answer" in body
        assert probe(api.admin_port, "/livez") == 200, "alive: only not ready"
