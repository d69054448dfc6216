"""Headers every answer carries, error answers included."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

SECURITY_HEADERS = {
    # Browsers must not sniff a JSON answer into something executable.
    "x-content-type-options": "nosniff",
}


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: it sees every response start, unlike `response_headers`,
    which exception handlers' responses skip."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS.items():
            headers[name] = value
