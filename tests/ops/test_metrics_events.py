"""The counters fed by `apiclub.observe` events move on real traffic: TLS handshake failures,
port-80 answers, group commits, rate-limit refusals."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.helpers import Served, free_port, served

pytestmark = pytest.mark.timeout(120)


def scrape(api: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{api.admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_handshakes_and_their_failures_are_counted(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        before = scrape(api)
        with socket.create_connection(("127.0.0.1", api.port)) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # HTTP on the TLS port
            plain.recv(1024)
        with httpx.Client(verify=api.client_context()) as client:
            assert client.get(f"https://localhost:{api.port}/").status_code == 200
        after = scrape(api)
    failures = ("apiclub_tls_handshake_failures_total", ())
    handshakes = ("apiclub_tls_handshakes_total", ())
    assert after[failures] - before[failures] == 1
    assert after[handshakes] - before[handshakes] == 1, "only the good one reached SNI"


HOOK_SCRIPT = textwrap.dedent(
    """
    import asyncio, ssl, sys, trustme
    from apiclub import observe
    from apiclub.compat import patches as compat

    seen = []
    observe.subscribe(lambda event, fields: seen.append(event))
    left_out = {"hooked": set(), "stock": {"tls-handshake-failures"}}[sys.argv[1]]
    compat.install(skip=frozenset(left_out))

    async def main():
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(context)
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\\r\\n\\r\\n")
        await reader.read()
        writer.close()
        await asyncio.sleep(0.2)
        server.close()

    asyncio.run(main())
    print(seen.count("tls.handshake_failed"))
    """
)


@pytest.mark.parametrize(("mode", "expected"), [("hooked", "1"), ("stock", "0")])
def test_the_asyncio_hook_is_what_counts_failures(mode: str, expected: str) -> None:
    """Without the `tls-handshake-failures` patch asyncio tells no one (the twin sees 0)."""
    result = subprocess.run(
        [sys.executable, "-c", HOOK_SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == expected, result.stderr


def test_port_80_answers_group_commits_and_rate_limit_refusals(tmp_path: Path) -> None:
    http_port = free_port()
    with served(
        tmp_path / "data", "--http-port", str(http_port), "--rate-limit", "5/minute"
    ) as api:
        before = scrape(api)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as plain:
            assert plain.get("/x", headers={"Host": "localhost"}).status_code == 301
            assert plain.get("/x", headers={"Host": "evil.example"}).status_code == 421
            assert plain.get("/.well-known/acme-challenge/nope").status_code == 404
        with httpx.Client(
            verify=api.client_context(), base_url=f"https://localhost:{api.port}"
        ) as c:
            statuses = [c.post("/task/", json={"name": f"n{i}"}).status_code for i in range(7)]
        after = scrape(api)
    assert statuses == [201] * 5 + [429] * 2

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    for kind in ("redirect", "refused", "challenge"):
        assert delta("apiclub_redirect_answers_total", kind=kind) == 1, kind
    assert delta("apiclub_db_commit_batch_size_count") == 5
    assert delta("apiclub_db_commit_batch_size_sum") == 5, "one write per commit, in sequence"
    assert delta("apiclub_db_commit_duration_seconds_count") == 5
    assert delta("apiclub_rate_limit_rejections_total") == 2
    assert delta("apiclub_http_requests_total", method="POST", route="/task", status="429") == 2
    assert delta("apiclub_auth_rejections_total") == 0


def test_database_unavailable_answers_are_counted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data) as api:
        before = scrape(api)
        with httpx.Client(
            verify=api.client_context(), base_url=f"https://localhost:{api.port}"
        ) as c:
            assert c.post("/task/", json={"name": "stored"}).status_code == 201
            (data / "api.db").unlink()  # the file deleted under the server: 503, not a 500
            answer = c.post("/task/", json={"name": "refused"})
        after = scrape(api)
    assert answer.status_code == 503, answer.text
    key = ("apiclub_db_unavailable_answers_total", (("reason", "unavailable"),))
    assert after.get(key, 0.0) - before.get(key, 0.0) == 1
    assert after.get(("apiclub_db_unavailable_answers_total", (("reason", "busy"),)), 0.0) == 0


BUSY_TIMEOUT = 0.3
"""`--db-busy-timeout` of the busy test: how long the server's write waits for the lock."""


def busy_count(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], reason: str) -> float:
    return samples.get(("apiclub_db_unavailable_answers_total", (("reason", reason),)), 0.0)


def test_a_write_lock_held_past_the_busy_timeout_is_a_503_counted_as_busy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with served(data, "--db-busy-timeout", str(BUSY_TIMEOUT)) as api:
        with httpx.Client(
            verify=api.client_context(), base_url=f"https://localhost:{api.port}"
        ) as c:
            assert c.post("/task/", json={"name": "before"}).status_code == 201
            before = scrape(api)
            # Another process's writer: a separate connection on the same file takes the lock.
            holder = sqlite3.connect(data / "api.db", isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                started = time.monotonic()
                refused = c.post("/task/", json={"name": "refused"})
                waited = time.monotonic() - started
                during = scrape(api)
                holder.execute("ROLLBACK")
            finally:
                holder.close()
            # The twin: the lock released, the same write succeeds and nothing counts as busy.
            stored = c.post("/task/", json={"name": "after"})
            after = scrape(api)
            listed = c.get("/task/", params={"page_size": 100}).json()
        log = api.log()
    assert refused.status_code == 503, refused.text
    assert refused.json() == {
        "status_code": 503,
        "detail": "Service Unavailable: the database is busy, retry later",
        "extra": None,
    }
    assert refused.headers["Retry-After"] == "5"
    assert BUSY_TIMEOUT <= waited < 10 * BUSY_TIMEOUT, "it waited the timeout set, not 30 s"
    assert busy_count(during, "busy") - busy_count(before, "busy") == 1
    assert busy_count(during, "unavailable") == busy_count(before, "unavailable")
    assert "database unavailable" in log and "database is locked" in log

    assert stored.status_code == 201, stored.text
    assert busy_count(after, "busy") == busy_count(during, "busy")
    assert [task["name"] for task in listed["tasks"]] == ["before", "after"]
