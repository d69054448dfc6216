"""`--log-format json`: one JSON object per line, one access line per request, Caddy's field
names, the request id kept from a trusted proxy; no bearer token or database password."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.ops.helpers import Served, served

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cr3t-bearer-token-6f1c"
ACCESS_FIELDS = {
    "ts", "level", "logger", "msg", "request_id", "remote_ip", "remote_port", "proto",
    "method", "host", "uri", "status", "size", "duration", "user_agent",
}  # fmt: skip


def exercise(api: Served, request_id: str) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "json-log-test/1"}
    with httpx.Client(verify=api.client_context(), base_url=f"https://localhost:{api.port}") as c:
        return [
            c.get("/", headers={**headers, "X-Request-ID": request_id}),
            c.post("/task/", json={"name": "logged"}, headers=headers),
            c.get("/task/424242?token=" + TOKEN[:3], headers=headers),
        ]


def stopped_log(api: Served) -> str:
    api.process.send_signal(signal.SIGTERM)
    assert api.process.wait(timeout=30) == 0
    return api.log()


def parsed(log: str) -> list[dict]:
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_json_lines_with_caddy_fields_and_the_proxy_request_id(tmp_path: Path) -> None:
    with served(tmp_path / "data", "--log-format", "json", "--trusted-proxy", "127.0.0.1") as api:
        answers = exercise(api, "from-the-proxy-1")
        log = stopped_log(api)
    records = parsed(log)
    access = [r for r in records if r["logger"] == "apiclub.access"]
    assert [(r["method"], r["uri"], r["status"]) for r in access] == [
        ("GET", "/", 200),
        ("POST", "/task/", 201),
        ("GET", "/task/424242?token=s3c", 404),
    ]
    for record, answer in zip(access, answers, strict=True):
        assert record.keys() >= ACCESS_FIELDS
        assert record["msg"] == "handled request" and record["level"] == "info"
        assert record["remote_ip"] == "127.0.0.1" and record["proto"] == "HTTP/1.1"
        assert record["host"] == f"localhost:{api.port}"
        assert record["user_agent"] == "json-log-test/1"
        assert record["size"] == len(answer.content)
        assert 0 < record["duration"] < 5
        assert record["request_id"] == answer.headers["x-request-id"]
    assert access[0]["request_id"] == "from-the-proxy-1"
    assert len({r["request_id"] for r in access}) == 3, "a new id for the others"
    assert any(r["logger"] == "apiclub.db.lifecycle" for r in records), "the app log too"
    assert TOKEN not in log


def test_request_id_from_an_untrusted_peer_is_replaced(tmp_path: Path) -> None:
    with served(tmp_path / "data", "--log-format", "json") as api:
        answers = exercise(api, "forged-by-a-client")
        log = stopped_log(api)
    access = [r for r in parsed(log) if r["logger"] == "apiclub.access"]
    assert access[0]["request_id"] != "forged-by-a-client"
    assert answers[0].headers["x-request-id"] == access[0]["request_id"]


def test_text_stays_the_default(tmp_path: Path) -> None:
    with served(tmp_path / "data") as api:
        exercise(api, "x")
        log = stopped_log(api)
    for line in log.splitlines():
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert '"GET / 1.1" 200' in log
    assert TOKEN not in log


def test_no_database_password_in_json_lines(tmp_path: Path, postgres_url: str) -> None:
    password = urlsplit(postgres_url).password
    assert password and len(password) > 8
    with served(tmp_path / "data", "--log-format", "json", "--database-url", postgres_url) as api:
        exercise(api, "pg")
        log = stopped_log(api)
    records = parsed(log)
    assert any("postgresql://" in r["msg"] for r in records), "the database is named..."
    assert password not in log, "...without its password"
    assert TOKEN not in log


def test_app_lines_logged_while_answering_carry_the_request_id(tmp_path: Path) -> None:
    from tests.ops.test_check import unwritable

    data = tmp_path / "data"
    with served(data, "--log-format", "json") as api:
        context = api.client_context()
        with httpx.Client(verify=context, base_url=f"https://localhost:{api.port}") as client:
            assert client.post("/task/", json={"name": "before"}).status_code == 201
            with unwritable(data / "api.db"):
                refused = client.post("/task/", json={"name": "refused"})
        log = stopped_log(api)
    assert refused.status_code == 503, refused.text
    request_id = refused.headers["x-request-id"]
    records = parsed(log)
    joined = [r for r in records if r.get("request_id") == request_id]
    loggers = {r["logger"] for r in joined}
    assert "apiclub.access" in loggers
    assert loggers - {"apiclub.access"}, f"an application line with the id: {joined}"
    assert all("request_id" not in r for r in records if r["logger"] == "apiclub.db.lifecycle")
