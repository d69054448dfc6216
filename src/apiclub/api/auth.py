"""Bearer tokens on the API (RFC 6750): which requests need one, the 401s, the OpenAPI scheme.

`APICLUB_AUTH` (`Settings.auth_mode`) decides which requests need `Authorization: Bearer
<token>`: none (`off`), every method but GET/HEAD/OPTIONS (`writes`), or every request (`all`)
except the health check `GET /` and the OpenAPI document under `/schema`, which load balancers,
the container's HEALTHCHECK and API clients fetch without credentials and which reveal no task.

The check is a Litestar guard, so it runs after routing and before the body is parsed: a
request without a valid token stores nothing and costs no JSON parsing. Its body is read and
dropped before the refusal (never more than APICLUB_MAX_BODY_SIZE, as a write would be):
answering while the client still sends it made Hypercorn close HTTP/1.1 keep-alive connections
without `Connection: close`, failing the client's next request, and reset HTTP/2 connections
on the late DATA frames (a `KeyError` traceback in the log). Answers:

- no `Authorization`, or another scheme: 401, `WWW-Authenticate: Bearer realm="apiclub"`;
- a bearer token that is not (or no longer) stored: 401 with `error="invalid_token"`
  (RFC 6750 3.1), counted as a failed attempt of the client's address;
- an address past `AUTH_FAILURE_LIMIT` failures: 429 with `Retry-After` for every request
  that needs a token, the right token included, until the window lets it try again (otherwise
  a guesser would learn the moment a guess is right from the status alone).

Tokens are never logged: the access log has no headers, and no message here quotes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import anyio
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from apiclub.api.ratelimit import FailureLimiter
from apiclub.errors import StorageError
from apiclub.settings import AuthMode, Settings
from apiclub.tokens import LiveTokens, TokenStore
from apiclub.units import SECONDS

logger = logging.getLogger("apiclub.auth")

LAST_USE_FLUSH_INTERVAL = 60 * SECONDS
"""How often a server writes the tokens' last use: `tokens list` may lag by this much."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = re.compile(r"/|/schema(/.*)?")
"""Never behind a token, even with `all` (see the module docstring)."""
REALM = "apiclub"
SCHEME_NAME = "bearer"
"""The security scheme's key in the OpenAPI components."""
HOW_TO_GET_ONE = "the server's operator creates one with `apiclub tokens add NAME`"


def needs_token(mode: AuthMode, method: str, path: str) -> bool:
    """Tell whether a request needs a bearer token under `mode` (`auto` already resolved)."""
    if mode is AuthMode.OFF:
        return False
    if mode is AuthMode.WRITES:
        return method.upper() not in SAFE_METHODS
    return OPEN_PATHS.fullmatch(path) is None


class TokenAuth:
    """The guard, its start-up and shut-down, and its part of the OpenAPI document."""

    def __init__(self, mode: AuthMode, tokens: LiveTokens, failures: FailureLimiter) -> None:
        self.mode = mode
        self.tokens = tokens
        self.failures = failures
        self._flusher: asyncio.Task[None] | None = None

    async def guard(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        """Litestar guard: return to let the request through, raise to answer 401 or 429."""
        method = str(connection.scope.get("method", "GET"))
        if not needs_token(self.mode, method, connection.scope["path"]):
            return
        address = connection.client.host if connection.client else "unknown"
        try:
            self._check(connection, address)
        except HTTPException:
            await _discard_body(connection)
            raise

    def _check(self, connection: ASGIConnection[Any, Any, Any, Any], address: str) -> None:
        self.failures.check(address)
        scheme, _, token = connection.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer":
            raise self._refusal(
                f"{self._what()} need a token here: send Authorization: Bearer <token> "
                f"({HOW_TO_GET_ONE})",
                challenge=f'Bearer realm="{REALM}"',
            )
        if self.tokens.verify(token.strip()) is not None:
            return
        self.failures.record_failure(address)
        none_yet = " (no token exists on this server yet)" if self.tokens.count == 0 else ""
        raise self._refusal(
            f"the bearer token is not valid: it is unknown or revoked{none_yet}; send one "
            "that `apiclub tokens add NAME` printed on the server",
            challenge=(
                f'Bearer realm="{REALM}", error="invalid_token", '
                'error_description="the token is unknown or revoked"'
            ),
        )

    async def start(self) -> None:
        """Read the tokens (a corrupt file stops the start-up) and start recording last use."""
        count = self.tokens.load()
        where = self.tokens.store.path
        if count == 0:
            logger.warning(
                "APICLUB_AUTH=%s: %s need a token and none exists yet in %s, so all are "
                "refused: create one with `apiclub tokens add NAME`",
                self.mode,
                self._what(),
                where,
            )
        else:
            logger.info(
                "APICLUB_AUTH=%s: %s need a token (%d in %s)", self.mode, self._what(), count, where
            )
        self._flusher = asyncio.create_task(self._flush_every(LAST_USE_FLUSH_INTERVAL))

    async def stop(self) -> None:
        """Stop the periodic writes and record the last uses not yet written."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        """Write the last uses noted since the previous flush, in a thread (it fsyncs)."""
        used = self.tokens.take_used()
        if not used:
            return
        try:
            await anyio.to_thread.run_sync(self.tokens.store.record_use, used)
        except StorageError as exc:
            self.tokens.give_back(used)
            logger.warning("last use of tokens not recorded, retrying later: %s", exc)

    def components(self) -> Components:
        """The OpenAPI components declaring the bearer scheme."""
        scheme = SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="apiclub_...",
            description=(
                f"A token from `apiclub tokens add NAME`, sent as `Authorization: Bearer "
                f"<token>`. Needed for {self._what()} (APICLUB_AUTH={self.mode})."
            ),
        )
        return Components(security_schemes={SCHEME_NAME: scheme})

    def declare_security(self, app: Litestar) -> None:
        """Mark every operation that needs a token with the bearer scheme in OpenAPI.

        Set on the app's own handlers after routing, from `needs_token` itself, so the document
        cannot disagree with the guard. Litestar resolves `security` when it first builds the
        document (on the first `/schema` request), after this; `tests/api/test_auth.py` checks
        the document.
        """
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for handler in route.route_handlers:
                if any(needs_token(self.mode, m, route.path) for m in handler.http_methods):
                    handler.security = [{SCHEME_NAME: []}]

    def _what(self) -> str:
        if self.mode is AuthMode.WRITES:
            return "POST, PUT and DELETE"
        return "all requests but GET / and /schema"

    def _refusal(self, detail: str, *, challenge: str) -> NotAuthorizedException:
        return NotAuthorizedException(
            detail=detail, extra={"auth": str(self.mode)}, headers={"WWW-Authenticate": challenge}
        )

    async def _flush_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()


def create_token_auth(settings: Settings) -> TokenAuth | None:
    """The token check `settings.auth_mode` asks for, or None when it is `off`."""
    mode = settings.auth_mode
    if mode is AuthMode.OFF:
        return None
    return TokenAuth(mode, LiveTokens(TokenStore(settings.data_dir)), FailureLimiter())


async def _discard_body(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Read the request body to its end, keeping none of it (see the module docstring)."""
    if not isinstance(connection, Request):
        return
    # Too large (413 would follow anyway), or the client went away: the connection closes.
    with contextlib.suppress(HTTPException):
        async for _ in connection.stream():
            pass
