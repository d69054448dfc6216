"""What one setting is, apart from its `Settings` field: a variable, a flag, a parser, two texts.

`setting_table.SETTINGS` lists one `SettingSpec` per variable; everything that used to repeat a
setting (the `from_env` block, the flag list, the README row) is made from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Parser = Callable[[str, str], object]
"""Reads a variable's text (stripped, never empty) into the field's value; its first argument
is the variable's name, for the error message (`setting_values.parse_port`)."""


@dataclass(frozen=True)
class SettingSpec:
    """One environment variable, the flag that sets it and the `Settings` field it fills.

    Names follow from `env` unless given: `APICLUB_HTTPS_PORT` fills `https_port` and has the
    flag `--https-port`.
    """

    env: str
    parse: Parser
    help: str
    """The flag's line in `apiclub serve --help`: short, with the default."""
    doc: str
    """The README's "meaning" cell (Markdown): what an operator needs to know."""
    default: str | None = None
    """The README's "default" cell; None shows the `Settings` default in backticks."""
    attribute: str | None = None
    """The `Settings` field, when not `env` lower-cased without `APICLUB_`."""
    flag: str | None = ""
    """The flag, when not derived from `env`; None for a variable with no flag (a secret)."""
    repeat: bool = False
    """The flag may be given several times; the values are joined with commas."""
    switch: bool = False
    """The flag takes no value: given means `1`."""

    @property
    def field(self) -> str:
        """The `Settings` field this variable fills."""
        return self.attribute or self.env.removeprefix("APICLUB_").lower()

    @property
    def option(self) -> str | None:
        """The command-line flag, or None."""
        if self.flag is None:
            return None
        return self.flag or "--" + self.env.removeprefix("APICLUB_").lower().replace("_", "-")


def text(_key: str, raw: str) -> str:
    return raw


def upper(_key: str, raw: str) -> str:
    return raw.upper()


def lower(_key: str, raw: str) -> str:
    return raw.lower()


def path(_key: str, raw: str) -> Path:
    return Path(raw)


def by_text(parse: Callable[[str], object]) -> Parser:
    """A parser that names its variable in its own errors already."""
    return lambda _key, raw: parse(raw)
