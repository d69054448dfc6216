"""Private members of Litestar and Piccolo that apiclub's subclasses override.

Not patches (nothing is replaced on the library's own classes), but the same risk: a release
that renames the member leaves our override unused, silently. `problems()` is checked by
`tests/compat/test_compat.py` rather than at every start, so that starting needs neither
asyncpg nor the ACME client imported.
"""

from __future__ import annotations

from litestar import Litestar
from piccolo.engine.postgres import PostgresEngine

from apiclub.compat.registry import Fits, Target

FITS = (Fits("litestar", ("2.",)), Fits("piccolo", ("1.",)))

OVERRIDDEN = (
    # api/app.py: Litestar's default plugins minus pydantic and attrs (not installed).
    Target(Litestar, "_get_default_plugins", mentions=("MsgspecDIPlugin",)),
    # db/postgres.py: queries outside a transaction go through our pool.
    Target(PostgresEngine, "_run_in_pool"),
)


def problems() -> list[str]:
    """Why an overridden member no longer fits (empty: all do)."""
    found = [problem for fits in FITS if (problem := fits.problem()) is not None]
    for target in OVERRIDDEN:
        original = getattr(target.owner, target.name, None)
        if original is None:
            found.append(f"{target.label} is gone")
        elif (problem := target.problem(original)) is not None:
            found.append(problem)
    return found
