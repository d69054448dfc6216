"""Send an HTTP/1.1 response head together with the first body bytes: one write, one record.

Hypercorn 0.18 writes the head of every HTTP/1.1 response as soon as the app starts it, then
the body as a second write. Over TLS each write is its own TLS record and its own `send()`
system call, the largest single cost of a keep-alive `GET /` in our profiles
(docs/performance.md, change 4). nginx and uvicorn send a small response in one segment. This holds
the head of a final (>= 200) response until the next event of the connection (the body, the
end of the message, or an error) and sends both at once; a connection that closes in between
never had a complete response to send.
"""

from __future__ import annotations

from typing import Any

import h11
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol

_HELD = "_apiclub_held_head"


def coalesce_h11_head_and_body() -> None:
    """Patch Hypercorn's HTTP/1.1 protocol as the module docstring says."""

    async def send_h11_event(self: Any, event: Any) -> None:
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        held: bytes | None = getattr(self, _HELD, None)
        if isinstance(event, h11.Response):
            setattr(self, _HELD, (held or b"") + data)
            return
        if held is not None:
            setattr(self, _HELD, None)
            data = held + (data or b"")
        await self.send(RawData(data=data))

    H11Protocol._send_h11_event = send_h11_event  # type: ignore[method-assign]
