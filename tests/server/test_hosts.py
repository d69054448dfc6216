from __future__ import annotations

import json

import pytest

from apiclub.names import parse_host
from apiclub.server.asgi import Message, Receive, Scope, Send
from apiclub.server.hosts import HostCheckMiddleware, request_host
from tests.server.asgi_helpers import call, http_scope


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8443", "localhost"),
        ("api.example.com.", "api.example.com"),
        ("127.0.0.1:443", "127.0.0.1"),
        ("[::1]:8443", "::1"),
        ("[0:0::1]", "::1"),
        ("xn--caf-dma.example", "xn--caf-dma.example"),
    ],
)
def test_parse_host_normalises(header: str, host: str) -> None:
    assert parse_host(header) == host


@pytest.mark.parametrize(
    "header",
    ["", "exa mple.com", "host:port", "[::1", "[nope]:80", "[::1]x", "a/b", "café.example"],
)
def test_parse_host_rejects_garbage(header: str) -> None:
    assert parse_host(header) is None


def test_request_host_reads_h2_authority() -> None:
    scope = http_scope(host=None, headers=[(b":authority", b"Example.COM:8443")])
    assert request_host(scope) == "example.com"


def test_request_host_prefers_host_header() -> None:
    scope = http_scope(host="localhost", headers=[(b":authority", b"other.example")])
    assert request_host(scope) == "localhost"


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
async def test_configured_host_passes_through() -> None:
    sent = await call(HostCheckMiddleware(ok_app, ["localhost"]), http_scope(host="localhost:8443"))
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"ok"},
    ]


@pytest.mark.anyio
async def test_unknown_host_is_421_with_json_body() -> None:
    sent = await call(HostCheckMiddleware(ok_app, ["localhost"]), http_scope(host="evil.test"))
    body = b'{"status_code": 421, "detail": "this server does not serve host \'evil.test\'"}'
    assert sent == [
        {
            "type": "http.response.start",
            "status": 421,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]
    assert json.loads(body)["status_code"] == 421


@pytest.mark.anyio
async def test_lifespan_is_not_checked() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))

    await HostCheckMiddleware(app, ["localhost"])({"type": "lifespan"}, call, call)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}]
