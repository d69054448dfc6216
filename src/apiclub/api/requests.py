"""A Request whose JSON decoding turns every malformed body into a 400 that says why.

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
from litestar.exceptions import ClientException, SerializationException


class ApiRequest(Request[Any, Any, State]):
    """The request class of the API app (see the module docstring)."""

    async def json(self) -> Any:
        """The body decoded as JSON; 400 with the reason when it is not valid JSON."""
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
