"""`apiclub tokens` and a real `apiclub serve` that asks for them: processes, TLS, the log."""

from __future__ import annotations

import os
import re
import signal
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import Served, run_apiclub, served

TOKEN = re.compile(r"apiclub_[A-Za-z0-9_-]{43}")
REVOKE_WITHIN = 5.0  # seconds; the server checks the file at most once a second


def add_token(data_dir: Path, name: str = "ci") -> str:
    result = run_apiclub("tokens", "add", name, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert TOKEN.fullmatch(result.stdout.strip()), result.stdout
    return result.stdout.strip()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def client(server: Served, *, http2: bool = False) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server.root))
    return httpx.Client(base_url=server.url, verify=context, timeout=10, http2=http2)


def post(http: httpx.Client, token: str | None, name: str = "task") -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return http.post("/task/", json={"name": name}, headers=headers).status_code


def test_add_prints_the_token_once_and_list_never_shows_it(tmp_path: Path) -> None:
    added = run_apiclub("tokens", "add", "ci", data_dir=tmp_path)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert TOKEN.fullmatch(token)
    assert added.stdout == f"{token}\n"
    assert token not in added.stderr
    assert "it is shown this once" in added.stderr
    listed = run_apiclub("tokens", "list", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "(UTC)", "LAST", "USED", "(UTC)"]
    assert lines[1].startswith("ci  ") and lines[1].endswith("never")
    assert token not in listed.stdout + listed.stderr
    assert token not in (tmp_path / "auth/tokens.json").read_text()


def test_two_adds_give_two_different_tokens_and_a_taken_name_exits_1(tmp_path: Path) -> None:
    assert add_token(tmp_path, "one") != add_token(tmp_path, "two")
    again = run_apiclub("tokens", "add", "one", data_dir=tmp_path)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == (
        "apiclub: error: a token named 'one' exists already: revoke it first "
        "(apiclub tokens revoke one) or choose another name\n"
    )


def test_revoke_of_an_unknown_name_exits_1_in_one_line(tmp_path: Path) -> None:
    add_token(tmp_path, "ci")
    result = run_apiclub("tokens", "revoke", "cd", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("apiclub: error: no token is named 'cd' in ")
    assert run_apiclub("tokens", "revoke", "ci", data_dir=tmp_path).returncode == 0


def test_the_token_file_is_0600_in_0700_directories_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    data = tmp_path / "data"
    add_token(data)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (data, data / "auth")}
    assert modes == {data: 0o700, data / "auth": 0o700}
    assert stat.S_IMODE((data / "auth/tokens.json").stat().st_mode) == 0o600
    # The twin: the same umask leaves a file written the ordinary way readable by all.
    (tmp_path / "ordinary").write_text("x")
    assert stat.S_IMODE((tmp_path / "ordinary").stat().st_mode) == 0o644


def test_serve_with_tokens_revoke_takes_effect_and_no_token_is_logged(tmp_path: Path) -> None:
    token = add_token(tmp_path)
    wrong = "apiclub_" + "x" * 43
    with served(tmp_path, "--auth", "writes") as server, client(server) as http:
        assert post(http, None, "anonymous") == 401
        assert post(http, wrong, "wrong") == 401
        assert post(http, token, "right") == 201
        revoked = run_apiclub("tokens", "revoke", "ci", data_dir=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + REVOKE_WITHIN
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(post(http, token, "after revoke"))
            if statuses[-1] == 401:
                break
            time.sleep(0.1)
        assert statuses[-1] == 401, statuses
        names = [task["name"] for task in http.get("/task/?page_size=100").json()["tasks"]]
        http.close()  # an idle keep-alive connection would hold the stop for its grace period
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.log()
    # Only the right token, before its revocation, stored anything.
    assert names == ["right"] + ["after revoke"] * (len(statuses) - 1)
    # The access log is on and names these requests, so the search below can see them ...
    assert re.search(r"POST /task/ .*201", log), log[-2000:]
    assert re.search(r"POST /task/ .*401", log), log[-2000:]
    # ... and no line holds a token, the right one or the wrong one, nor its random part.
    for secret in (token, wrong, token.removeprefix("apiclub_")):
        assert secret not in log


def test_last_use_is_listed_after_the_server_stops(tmp_path: Path) -> None:
    token = add_token(tmp_path)
    with served(tmp_path, "--auth", "writes") as server, client(server) as http:
        assert post(http, token) == 201
        assert "never" in run_apiclub("tokens", "list", data_dir=tmp_path).stdout
        http.close()  # an idle keep-alive connection would hold the stop for its grace period
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    listed = run_apiclub("tokens", "list", data_dir=tmp_path).stdout.splitlines()[1]
    assert not listed.endswith("never"), listed


def test_auto_asks_a_token_when_a_public_name_is_served(tmp_path: Path) -> None:
    token = add_token(tmp_path)
    with (
        served(tmp_path, "--domain", "localhost,api.example.com") as server,
        client(server) as http,
    ):
        assert post(http, None) == 401
        assert post(http, token) == 201


def test_auto_asks_none_for_localhost(tmp_path: Path) -> None:
    add_token(tmp_path)
    with served(tmp_path) as server, client(server) as http:
        assert post(http, None) == 201


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
def test_a_refused_write_leaves_the_connection_usable(tmp_path: Path, http2: bool) -> None:
    # A body too big for the request's first packets: the 401 is decided before it arrives.
    token, big = add_token(tmp_path), "x" * 200_000
    with served(tmp_path, "--auth", "writes") as server, client(server, http2=http2) as http:
        refused = [post(http, None, big), post(http, "apiclub_wrong", big)]
        created = post(http, token, "after the refusals")
        assert http.get("/task/").json()["total"] == 1
        http.close()  # an idle keep-alive connection would hold the stop for its grace period
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.log()
    assert (refused, created) == ([401, 401], 201)
    # One connection served all of it: no reconnection, no reset, no traceback.
    assert "Traceback" not in log, log[-3000:]
    assert len(set(re.findall(r"apiclub\.access: 127\.0\.0\.1:(\d+)", log))) == 1, log[-3000:]


def test_no_token_is_logged_at_debug_level_either(tmp_path: Path) -> None:
    token = add_token(tmp_path)
    wrong = "apiclub_" + "y" * 43
    with (
        served(tmp_path, "--auth", "writes", "--log-level", "DEBUG") as server,
        client(server) as http,
    ):
        assert (post(http, wrong), post(http, token)) == (401, 201)
        http.close()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.log()
    assert " DEBUG " in log  # the twin: the log is at DEBUG, so more would show if anything did
    assert re.search(r"POST /task/ .*201", log), log[-2000:]
    for secret in (token, wrong, token.removeprefix("apiclub_"), wrong.removeprefix("apiclub_")):
        assert secret not in log
