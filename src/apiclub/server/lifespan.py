"""Know when the API has started, and why it did not."""

from __future__ import annotations

import asyncio
import re

from apiclub import errors
from apiclub.server.asgi import ASGIApp, Message, Receive, Scope, Send


class LifespanWatch:
    """Wrap an ASGI app to learn when its startup hooks completed or failed.

    Hypercorn turns a failed startup into `LifespanFailureError` with the app's whole formatted
    traceback; the launcher wants one line, and wants to start the redirect listener only once
    the API (and its migrations) are ready.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.started = asyncio.Event()
        self.failure: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.started.set()
            elif message["type"] == "lifespan.startup.failed":
                self.failure = str(message.get("message", ""))
            await send(message)

        await self.app(scope, receive, watched_send)

    def startup_error(self) -> errors.ApiclubError:
        """The startup failure as our own exception, found in the formatted traceback.

        Litestar reports the failure as text only; an `apiclub.errors` exception in it (also
        inside an exception group's rendering) is rebuilt with its message.
        """
        text = self.failure or ""
        for match in reversed(list(_APICLUB_ERROR.finditer(text))):
            kind = getattr(errors, match["kind"], None)
            if isinstance(kind, type) and issubclass(kind, errors.ApiclubError):
                return kind(match["message"])
        lines = [line.strip(" |+-") for line in text.splitlines()]
        last = next((line for line in reversed(lines) if line), "no reason given")
        return errors.ApiclubError(f"the application failed to start: {last}")


_APICLUB_ERROR = re.compile(r"apiclub\.errors\.(?P<kind>\w+): (?P<message>.*)$", re.MULTILINE)
