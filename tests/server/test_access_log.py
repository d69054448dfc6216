"""The cheap access logger writes Hypercorn's own line for our format, and nothing when off."""

from __future__ import annotations

import logging

import pytest
from hypercorn.logging import AccessLogAtoms

from apiclub.server.access_log import AccessLogger
from apiclub.server.config import ACCESS_LOG_FORMAT, create_listener_config
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings
from tests.server.asgi_helpers import http_scope

pytestmark = pytest.mark.anyio

RESPONSE = {"status": 201, "headers": [(b"content-type", b"x"), (b"Content-Length", b"42")]}


def scope_from(client: tuple[str, int]) -> dict[str, object]:
    scope = http_scope(method="POST", path="/task/", query=b"a=1")
    scope["client"] = client
    return scope


@pytest.fixture
def logger() -> AccessLogger:
    sock = bind_socket("127.0.0.1", 0, option="test")
    config = create_listener_config(Settings(), sock, None)
    sock.close()
    assert isinstance(config.log, AccessLogger)
    return config.log


@pytest.mark.parametrize("response", [RESPONSE, None], ids=["answered", "no-answer"])
async def test_the_line_is_hypercorns_own(
    logger: AccessLogger, response: dict[str, object] | None
) -> None:
    scope = scope_from(("198.51.100.7", 40000))
    ours = ACCESS_LOG_FORMAT % logger.atoms(scope, response, 0.25)
    assert ours == ACCESS_LOG_FORMAT % AccessLogAtoms(scope, response, 0.25)  # type: ignore[arg-type]
    assert ours.startswith('198.51.100.7:40000 "POST /task/ 1.1" ')


async def test_lines_reach_apiclub_access_at_info_only(
    logger: AccessLogger, caplog: pytest.LogCaptureFixture
) -> None:
    scope = scope_from(("127.0.0.1", 1))
    with caplog.at_level(logging.WARNING, logger="apiclub.access"):
        await logger.access(scope, RESPONSE, 0.1)  # type: ignore[arg-type]
    assert not [r for r in caplog.records if r.name == "apiclub.access"]
    with caplog.at_level(logging.INFO, logger="apiclub.access"):
        await logger.access(scope, RESPONSE, 0.1)  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
    assert lines == ['127.0.0.1:1 "POST /task/ 1.1" 201 42 0.100000s']


@pytest.mark.parametrize(
    ("raw_path", "logged"),
    [
        (b"/x%0d%0aforged", "/x%0d%0aforged"),
        (b"/x\r\nforged\x00\x7f\xc3\xa9", "/x%0D%0Aforged%00%7F%C3%A9"),
        (b"/task/", "/task/"),
    ],
    ids=["encoded-crlf", "raw-controls", "plain"],
)
def test_the_path_is_logged_as_sent_with_controls_escaped(
    logger: AccessLogger, raw_path: bytes, logged: str
) -> None:
    # An HTTP/2 :path reaches the scope without h11's check of the request line.
    scope = http_scope(path="/x\r\nforged", raw_path=raw_path)
    assert logger.atoms(scope, RESPONSE, 0.1)["r"] == f"GET {logged} 1.1"
