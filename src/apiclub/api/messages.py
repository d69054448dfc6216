"""Validation messages in our words: what was wrong with which field, and what to send instead.

Litestar passes msgspec's texts through ("Expected `str`, got `int`"), and msgspec rewords them
between releases. The client reads ours; a text we do not recognise is passed on unchanged, so
a rewording upstream costs clarity, never the 400 itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from apiclub.api.schemas import NO_NUL

JSON_EXAMPLE = '{"name": "Write the tests"}'
BODY_KEY = "data"
"""The key Litestar gives a problem with the body as a whole."""

_TYPES = {
    "str": "a string",
    "int": "a whole number",
    "int | null": "a whole number",
    "float": "a number",
    "bool": "a boolean (true or false)",
    "null": "null",
    "array": "an array",
    "object": "an object",
}


def _type(name: str) -> str:
    return _TYPES.get(name, f"`{name}`")


def _field(key: str) -> str:
    return "the request body" if key == BODY_KEY else f"`{key}`"


def _wrong_type(key: str, found: re.Match[str]) -> str:
    if key == BODY_KEY:
        return f"the request body must be a JSON object like {JSON_EXAMPLE}, not {_type(found[2])}"
    return f"{_field(key)} must be {_type(found[1])}, not {_type(found[2])}"


def _missing(key: str, found: re.Match[str]) -> str:
    return f"missing required field `{found[1]}`: send a JSON object like {JSON_EXAMPLE}"


def _length(key: str, found: re.Match[str]) -> str:
    bound = "at least" if found[1] == ">=" else "at most"
    unit = "character" if found[2] == "1" else "characters"
    return f"{_field(key)} must be {bound} {found[2]} {unit} long"


def _range(key: str, found: re.Match[str]) -> str:
    bound = "at least" if found[1] == ">=" else "at most"
    return f"{_field(key)} must be a whole number {bound} {found[2]}"


def _pattern(key: str, found: re.Match[str]) -> str | None:
    if found[1] != NO_NUL.replace("\\", "\\\\"):
        return None
    return f"{_field(key)} must not contain a NUL character (U+0000)"


_RULES: tuple[tuple[re.Pattern[str], Callable[[str, re.Match[str]], str | None]], ...] = (
    (re.compile(r"Expected `([^`]+)`, got `([^`]+)`"), _wrong_type),
    (re.compile(r"Object missing required field `([^`]+)`"), _missing),
    (re.compile(r"Expected `str` of length (>=|<=) (\d+)"), _length),
    (re.compile(r"Expected `int(?: \| null)?` (>=|<=) (-?\d+)"), _range),
    (re.compile(r"Expected `str` matching regex '(.*)'"), _pattern),
)


def explain(message: str, key: str) -> str:
    """Our wording of one validation `message` about `key`, or `message` itself."""
    for pattern, rule in _RULES:
        if (found := pattern.fullmatch(message)) is not None:
            return rule(key, found) or message
    return message


def explain_all(extra: Any) -> Any:
    """Litestar's `extra` list with each message in our words; anything else unchanged."""
    if not isinstance(extra, list):
        return extra
    return [
        {**item, "message": _explain_item(item)} if isinstance(item, dict) else item
        for item in extra
    ]


def _explain_item(item: dict[str, Any]) -> Any:
    message, key = item.get("message"), str(item.get("key"))
    # Litestar reports an empty body as the KeyError text "'data'".
    if key == BODY_KEY and message == "'data'":
        return f"request body is empty: send a JSON object like {JSON_EXAMPLE}"
    return explain(message, key) if isinstance(message, str) else message
