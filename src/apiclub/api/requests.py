"""A Request whose JSON decoding turns every malformed body into a 400 that says why, and
every body that is not `application/json` into a 415.

Litestar 2 answers 500 when msgspec raises something other than `DecodeError`: invalid UTF-8
inside a JSON string (`UnicodeDecodeError`) and very deep nesting (`RecursionError`). Both are
the client's fault, so they become 400 here, where the body is decoded, instead of in a global
handler that would also hide our own bugs behind a 400. The reason is ours where we can tell it
(UTF-8, nesting): msgspec rewords its messages between releases (0.23 did).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import ClientException, HTTPException, SerializationException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

JSON_MEDIA_TYPE = "application/json"


class ApiRequest(Request[Any, Any, State]):
    """The request class of the API app (see the module docstring)."""

    async def json(self) -> Any:
        """The body decoded as JSON; 400 with the reason when it is not valid JSON, 415 when
        a body is sent as anything but `application/json`.

        Litestar would decode a `text/plain` body as JSON too, and a web page may POST
        `text/plain` to any origin without a CORS preflight (a "simple request"): any site a
        developer visits could then create tasks on their local server. An `application/json`
        body from another origin needs a preflight, which this API never grants.
        """
        media_type, _ = self.content_type
        if await self.body() and media_type.lower() != JSON_MEDIA_TYPE:
            raise HTTPException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail=(
                    f"Content-Type {media_type or '(none)'!r} is not accepted: send the body "
                    f"as JSON with Content-Type: {JSON_MEDIA_TYPE}"
                ),
                extra={"expected": JSON_MEDIA_TYPE},
            )
        try:
            return await super().json()
        except SerializationException as exc:
            if not _is_utf8(await self.body()):
                raise _not_utf8() from None
            reason = str(exc.detail).removeprefix("JSON is malformed: ")
            raise ClientException(f"request body is not valid JSON: {reason}") from None
        except UnicodeDecodeError:
            raise _not_utf8() from None
        except RecursionError:
            raise ClientException("request body is not valid JSON: nested too deeply") from None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _not_utf8() -> ClientException:
    return ClientException("request body is not valid JSON: it must be UTF-8")
