from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

from apiclub import units

SRC = Path(__file__).resolve().parents[1] / "src" / "apiclub"
UNIT_NAMES = frozenset(
    {"SECONDS", "MINUTES", "HOURS", "DAYS", "YEARS", "SECOND", "MINUTE", "HOUR", "DAY", "YEAR"}
    | {"BYTES", "OCTETS", "KIB", "MIB", "GIB", "KB", "MB"}
)
# The lead is moving these patch modules into server/compat/ (issue #13 part 1); they switch to
# apiclub.units there. Remove a name from here once its module no longer exists.


def unit_definitions(source: str) -> list[str]:
    """Names of units assigned at module level in `source`."""
    found = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        found += [t.id for t in targets if isinstance(t, ast.Name) and t.id in UNIT_NAMES]
    return found


def test_units_are_defined_only_in_the_units_module() -> None:
    offenders = {}
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative == "units.py":
            continue
        if names := unit_definitions(path.read_text(encoding="utf-8")):
            offenders[relative] = names
    assert offenders == {}, f"import these from apiclub.units instead: {offenders}"


def test_a_module_defining_its_own_unit_is_found() -> None:
    source = "from __future__ import annotations\nSECONDS = 1.0\nKIB: int = 1024\nTIMEOUT = 5\n"
    assert unit_definitions(source) == ["SECONDS", "KIB"]


def test_the_two_kinds_of_duration_agree() -> None:
    assert units.DAYS == units.DAY.total_seconds() == 86400.0
    assert timedelta(seconds=units.MINUTES) == units.MINUTE
    assert units.YEAR == 365 * units.DAY
    assert units.MIB == 1024 * 1024
