"""Exception handlers: every error answers JSON `{"status_code", "detail", "extra"}`.

- `HTTPException` (validation, 404, 405, 413 ...): its status and detail; 5xx details hidden.
- The database cannot serve now, as the engine classifies its own errors (`Engine.unavailable`:
  SQLite busy beyond the timeout, a read stopped at its deadline, read-only, full or
  unreachable; PostgreSQL down, restarting, out of connections or past the command timeout),
  or the SQLite file deleted or replaced under the server: 503 with `Retry-After`, since
  waiting or an operator can fix it (RFC 9110 15.6.4); never an answer from the wrong file.
  PostgreSQL's pool reconnects once it is back.
- Anything else: 500 `Internal Server Error`, logged with its traceback, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from apiclub.api.messages import explain_all
from apiclub.db import DatabaseFileError, Engine, Unavailable
from apiclub.observe import emit
from apiclub.units import SECONDS

logger = logging.getLogger(__name__)

CLIENT_GONE = "client disconnected prematurely"
"""Litestar 2's text (an InternalServerException) when the body ends in a disconnect."""
CLIENT_CLOSED_REQUEST = 499
"""nginx's status for "the client closed the connection before the answer": never sent (there
is nobody to read it), it marks the access-log line, which is written at DEBUG."""
RETRY_AFTER = int(5 * SECONDS)
"""What 503 answers tell clients to wait before retrying (whole seconds: RFC 9110 10.2.3)."""


def create_exception_handlers(max_body_size: int, engine: type[Engine]) -> ExceptionHandlersMap:
    """The handlers for `Litestar(exception_handlers=...)`; `max_body_size` names the 413 limit,
    `engine` (the kind of engine the app runs on) says which of its errors mean "unavailable"."""

    def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        status = exc.status_code
        if exc.detail == CLIENT_GONE:
            # The body stopped arriving: the client left, or the server cut a slow request at
            # its deadline. No bug, and nobody reads the answer: no traceback.
            logger.debug("%s %s: %s", request.method, request.url.path, exc.detail)
            return _json_error(CLIENT_CLOSED_REQUEST, "request body incomplete", None, None)
        if status >= HTTP_500_INTERNAL_SERVER_ERROR:
            return handle_internal(request, exc)
        detail, extra = exc.detail, explain_all(exc.extra)
        if status == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            detail = f"request body is larger than {max_body_size} bytes"
            extra = {"max_body_size": max_body_size}
        return _json_error(status, detail, extra, exc.headers)

    def handle_database(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        outage = engine.unavailable(exc)
        if outage is None:
            return handle_internal(request, exc)
        # asyncpg's texts name hosts and users, never the password (only the URL holds it).
        logger.warning("%s %s: database unavailable: %r", request.method, request.url.path, exc)
        return _unavailable(outage)

    def handle_file_gone(request: Request[Any, Any, Any], exc: DatabaseFileError) -> Response[Any]:
        # DatabaseGuard logged the cause and the fix once; this answer repeats it per request.
        return _unavailable(Unavailable(DatabaseFileError.detail), retry=False)

    def handle_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _json_error(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", None, None)

    return {
        HTTPException: handle_http,
        **dict.fromkeys(engine.unavailable_errors, handle_database),
        DatabaseFileError: handle_file_gone,
        Exception: handle_internal,
    }


def _unavailable(outage: Unavailable, retry: bool = True) -> Response[Any]:
    emit("db.unavailable", reason=outage.kind)
    reason = f"{outage.reason}, retry later" if retry else outage.reason
    return _json_error(
        HTTP_503_SERVICE_UNAVAILABLE,
        f"Service Unavailable: {reason}",
        None,
        {"Retry-After": str(RETRY_AFTER)},
    )


def _json_error(
    status: int, detail: str, extra: Any, headers: dict[str, str] | None
) -> Response[Any]:
    return Response(
        content={"status_code": status, "detail": detail, "extra": extra},
        status_code=status,
        headers=headers,
        media_type=MediaType.JSON,
    )
