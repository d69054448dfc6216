"""Drive a pure ASGI app with a hand-built scope and collect what it sends."""

from __future__ import annotations

from typing import Any

from apiclub.server.asgi import ASGIApp, Message


def http_scope(
    *,
    method: str = "GET",
    path: str = "/",
    raw_path: bytes | None = None,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    host: str | None = "localhost",
) -> dict[str, Any]:
    """An HTTP/1.1 scope as Hypercorn builds it."""
    all_headers = list(headers or [])
    if host is not None:
        all_headers.insert(0, (b"host", host.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "headers": all_headers,
        "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def call(app: ASGIApp, scope: dict[str, Any]) -> list[Message]:
    """Run one request through `app`; return every message it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
