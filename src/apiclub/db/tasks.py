"""The queries behind the task routes: plain Piccolo; on SQLite, writes are group-committed.

Rows come back as dicts with `id`, `name` and `created_at` (an aware UTC datetime). The list's
`name` filter and its total use the indexes and the maintained count of `search`, so they cost
about the same at a million tasks as at a thousand.
"""

from __future__ import annotations

from typing import Any

from piccolo.columns.combination import WhereRaw
from piccolo.query.base import Query
from piccolo.query.functions.aggregate import Count
from piccolo.query.methods.delete import Delete
from piccolo.query.methods.insert import Insert
from piccolo.query.methods.update import Update

from apiclub.db import search
from apiclub.db.binding import bound_engine
from apiclub.db.tables import Task

TaskRow = dict[str, Any]
_COLUMNS = (Task.id, Task.name, Task.created_at)

BOUNDED_OFFSET = 1_000
"""Tasks a page may skip and still be read in place on SQLite (`read_snapshot(bounded=True)`):
skipping a thousand rows along the primary key costs tens of microseconds; a deep page, a
`name` filter (as many rows as match) or a scan goes to a reader thread."""


async def ping() -> list[int]:
    """Run `SELECT 1` on the database: proves a real round trip."""
    rows = await Task.raw("SELECT 1 AS one")
    return [row["one"] for row in rows]


async def list_tasks(
    *, name: str | None, limit: int, offset: int = 0, after_id: int = 0
) -> tuple[list[TaskRow], int]:
    """One page of tasks ordered by id, and how many match `name` in all.

    `name` matches as a substring (case-insensitive for ASCII, like SQLite's LIKE); the `%`
    and `_` it contains match themselves, not any text. The page holds tasks with an id above
    `after_id` (a cursor: the last id of the previous page), skipping `offset` of them; the
    total ignores the cursor.
    """
    engine = bound_engine()
    select = Task.select(*_COLUMNS).order_by(Task.id).limit(limit).offset(offset)
    if after_id:
        # No id lies above the column's largest value: clamping keeps the parameter in range.
        select = select.where(Task.id > min(after_id, engine.max_task_id))
    filters = search.name_filters(engine.engine_type, name) if name else []
    for where in filters:
        select = select.where(where)
    # Both from one snapshot, so the page and its total agree.
    bounded = not filters and offset <= BOUNDED_OFFSET
    rows, counted = await engine.read_snapshot(select, _count(filters), bounded=bounded)
    return rows, _total(counted)


def _count(filters: list[WhereRaw]) -> Query[Any, Any]:
    """A query whose one row holds the number of tasks matching `filters` as its one value."""
    if not filters:
        return Task.raw(search.count_sql())
    count = Task.select(Count())
    for where in filters:
        count = count.where(where)
    return count


def _total(rows: list[TaskRow]) -> int:
    (value,) = rows[0].values()
    return int(value)


async def get_task(task_id: int) -> TaskRow | None:
    """The task with `task_id`, or None."""
    if not _storable(task_id):
        return None
    select = Task.select(*_COLUMNS).where(Task.id == task_id)
    (rows,) = await bound_engine().read_snapshot(select, bounded=True)  # by primary key
    return rows[0] if rows else None


async def create_task(name: str) -> TaskRow:
    """Store a new task and return it as stored."""
    rows = await _write(Task.insert(Task(name=name)).returning(*_COLUMNS))
    return rows[0]


async def update_task(task_id: int, name: str) -> TaskRow | None:
    """Rename the task with `task_id`; return it as stored, or None if there is none."""
    if not _storable(task_id):
        return None
    rows = await _write(
        Task.update({Task.name: name}).where(Task.id == task_id).returning(*_COLUMNS)
    )
    return rows[0] if rows else None


async def delete_task(task_id: int) -> TaskRow | None:
    """Delete the task with `task_id`; return it as it was, or None if there is none."""
    if not _storable(task_id):
        return None
    rows = await _write(Task.delete().where(Task.id == task_id).returning(*_COLUMNS))
    return rows[0] if rows else None


async def _write(query: Insert[Task] | Update[Any] | Delete) -> list[TaskRow]:
    """Run one write: in the next group commit on SQLite, in a transaction of its own on
    PostgreSQL (where the pool's connections write side by side); its rows once committed."""
    return await bound_engine().write(query)


def _storable(task_id: int) -> bool:
    # An id the column cannot hold names no task, and would fail as a query parameter.
    return 1 <= task_id <= bound_engine().max_task_id
