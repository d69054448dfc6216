"""Request and response bodies, as msgspec Structs (validated by Litestar, shown in OpenAPI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from apiclub.db.tables import NAME_MAX_LENGTH

NO_NUL = "^[^\\x00]*$"
"""Names hold no NUL character: PostgreSQL text cannot store one (SQLite could, so it is
refused on both engines alike)."""
MAX_PAGE_SIZE = 100
MAX_PAGE = 10**9
"""Highest page number: keeps LIMIT/OFFSET far inside SQLite's 64-bit integers."""


class TaskIn(msgspec.Struct):
    """The body of POST /task and PUT /task/{id}.

    Unknown fields are ignored, as the tutorial's FastAPI app did, so a client may send back a
    task it read (`id`, `created_at`). Surrounding whitespace is stripped from the name.
    """

    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=NAME_MAX_LENGTH,
            pattern=NO_NUL,
            description=(
                f"What to do: 1 to {NAME_MAX_LENGTH} characters, not only spaces, no NUL (U+0000)."
            ),
            examples=["Write the tests"],
        ),
    ]

    def __post_init__(self) -> None:
        name = self.name.strip()
        if not name:
            raise ValueError("`name` must not be empty or only whitespace")
        self.name = name


class TaskOut(msgspec.Struct):
    """A stored task."""

    id: int
    name: str
    created_at: Annotated[
        str,
        msgspec.Meta(
            description="When the task was created: ISO 8601, UTC, with offset.",
            examples=["2026-11-25T17:00:00.123456+00:00"],
        ),
    ]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TaskOut:
        """Build the response from a database row; the timestamp as `+00:00`, as documented."""
        created_at: datetime = row["created_at"]
        return cls(
            id=row["id"],
            name=row["name"],
            created_at=created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        )


class TaskPage(msgspec.Struct):
    """One page of the task list; `total` counts every task matching the filter."""

    tasks: list[TaskOut]
    total: int
    page: int
    page_size: int


class Status(msgspec.Struct):
    """The answer of GET /."""

    status: str


class DbCheck(msgspec.Struct):
    """The answer of GET /db-check: the rows of `SELECT 1`."""

    results: list[int]
