"""The queries behind the task routes: plain Piccolo, writes in IMMEDIATE transactions.

Rows come back as dicts with `id`, `name` and `created_at` (an aware UTC datetime).
"""

from __future__ import annotations

from typing import Any

from piccolo.columns.combination import WhereRaw

from apiclub.db.engine import bound_engine, write_transaction
from apiclub.db.tables import Task

TaskRow = dict[str, Any]
_COLUMNS = (Task.id, Task.name, Task.created_at)
# SQLite has no default LIKE escape character; this one is declared in the ESCAPE clause.
_LIKE_ESCAPE = "\\"


async def ping() -> list[int]:
    """Run `SELECT 1` on the database: proves a real round trip."""
    rows = await Task.raw("SELECT 1 AS one")
    return [row["one"] for row in rows]


async def list_tasks(*, name: str | None, limit: int, offset: int) -> tuple[list[TaskRow], int]:
    """One page of tasks ordered by id, and how many match in all.

    `name` matches as a substring (case-insensitive for ASCII, like SQLite's LIKE); the `%`
    and `_` it contains match themselves, not any text.
    """
    select = Task.select(*_COLUMNS).order_by(Task.id).limit(limit).offset(offset)
    count = Task.count()
    if name:
        where = WhereRaw(f"name LIKE {{}} ESCAPE '{_LIKE_ESCAPE}'", _like_pattern(name))
        select = select.where(where)
        count = count.where(where)
    # Both in one read transaction, so the page and its total agree.
    async with bound_engine().transaction():
        rows = await select
        total = await count
    return rows, total


async def get_task(task_id: int) -> TaskRow | None:
    """The task with `task_id`, or None."""
    rows = await Task.select(*_COLUMNS).where(Task.id == task_id)
    return rows[0] if rows else None


async def create_task(name: str) -> TaskRow:
    """Store a new task and return it as stored."""
    async with write_transaction():
        rows = await Task.insert(Task(name=name)).returning(*_COLUMNS)
    return rows[0]


async def update_task(task_id: int, name: str) -> TaskRow | None:
    """Rename the task with `task_id`; return it as stored, or None if there is none."""
    async with write_transaction():
        rows = await Task.update({Task.name: name}).where(Task.id == task_id).returning(*_COLUMNS)
    return rows[0] if rows else None


async def delete_task(task_id: int) -> TaskRow | None:
    """Delete the task with `task_id`; return it as it was, or None if there is none."""
    async with write_transaction():
        rows = await Task.delete().where(Task.id == task_id).returning(*_COLUMNS)
    return rows[0] if rows else None


def _like_pattern(text: str) -> str:
    escaped = (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"
