"""What the rest of apiclub asks of a database engine, whichever it is.

Two engines implement it: `sqlite.SQLiteDatabase` (the default, one file) and
`postgres.Postgres` (`APICLUB_DATABASE_URL`). The API needs four things of them besides the
queries Piccolo runs: to start and stop the engine, to know which of the engine's errors mean
"the database cannot serve now" (a 503 with `Retry-After`, not a 500), and the largest task id
the engine's column holds (a larger id names no task: 404, or 400 for a cursor). Each engine
answers these itself, beside the code that raises the errors, so `api/` never imports
`sqlite3` or `asyncpg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from piccolo.query.base import Query

Row = dict[str, Any]


@dataclass(frozen=True)
class Unavailable:
    """Why the database cannot serve now: an outage or contention, not a bug in the request."""

    reason: str
    """For the client and the log, e.g. "the database is busy" (no secret, no path)."""
    kind: Literal["busy", "unavailable"] = "unavailable"
    """The metric's label: "busy" when another writer holds the lock, which waiting fixes."""


class Engine(Protocol):
    """The part of an engine apiclub relies on beyond Piccolo's own `Engine`."""

    engine_type: str
    """Piccolo's name of the engine ("sqlite", "postgres"); the SQL of `search` depends on it."""
    max_task_id: ClassVar[int]
    """The largest id the task table's `id` column holds."""
    unavailable_errors: ClassVar[tuple[type[Exception], ...]]
    """The exception types `unavailable` may classify (for exception handler tables)."""

    @staticmethod
    def unavailable(exc: BaseException) -> Unavailable | None:
        """Why the database cannot serve, for a 503; None when `exc` is a bug, not an outage."""
        ...

    async def start(self) -> None:
        """Make the engine ready to serve (connect, open a pool)."""
        ...

    async def stop(self) -> None:
        """Finish what is queued and release every connection."""
        ...

    async def read_snapshot(
        self, *queries: Query[Any, Any], bounded: bool = False
    ) -> list[list[Row]]:
        """The rows of each of `queries`, all read from one snapshot."""
        ...

    async def write(self, query: Query[Any, Any]) -> list[Row]:
        """Run one INSERT, UPDATE or DELETE, committed before it returns; its rows."""
        ...
