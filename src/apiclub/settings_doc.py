"""The README's configuration table, made from `setting_table.SETTINGS`.

`python -m apiclub.settings_doc README.md` (`make settings-table`) rewrites the table between
its two markers; `--check` only says whether it is current, and a test runs that check, so the
table cannot drift from the flags and variables the code reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from apiclub.setting_spec import SettingSpec
from apiclub.setting_table import SETTINGS
from apiclub.settings import Settings

BEGIN = "<!-- settings table: made by `make settings-table` from src/apiclub/setting_table*.py -->"
END = "<!-- end of settings table -->"
HEADER = ("| variable | flag | default | meaning |", "| --- | --- | --- | --- |")


def render_table(specs: Iterable[SettingSpec] = SETTINGS) -> str:
    """The Markdown table, one row per variable, header included."""
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    rows = [*HEADER]
    for spec in specs:
        default = spec.default or f"`{_shown(defaults[spec.field])}`"
        rows.append(f"| `{spec.env}` | {_flag_cell(spec)} | {default} | {spec.doc} |")
    return "\n".join(rows) + "\n"


def _flag_cell(spec: SettingSpec) -> str:
    if spec.option is None:
        return "—"
    suffix = " (repeat)" if spec.repeat else " (no value)" if spec.switch else ""
    return f"`{spec.option}`{suffix}"


def _shown(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def replace_table(text: str, table: str) -> str:
    """`text` with what lies between the markers replaced by `table`.

    Raises:
        ValueError: a marker is missing or they are out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no settings table: put {BEGIN!r} and {END!r} around it")
    return f"{text[: start + len(BEGIN)]}\n{table}{text[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apiclub.settings_doc", description=__doc__)
    parser.add_argument("readme", type=Path, nargs="?", default=Path("README.md"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        wanted = replace_table(text, render_table())
    except ValueError as exc:
        sys.stderr.write(f"{args.readme}: {exc}\n")
        return 1
    if wanted == text:
        return 0
    if args.check:
        sys.stderr.write(f"{args.readme}: the settings table is stale: run make settings-table\n")
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    sys.stdout.write(f"{args.readme}: settings table rewritten\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
