"""The Piccolo tables of apiclub."""

from __future__ import annotations

from piccolo.columns import Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

NAME_MAX_LENGTH = 200
"""Longest task name, in characters; the API validates it before the database sees it."""


class Task(Table, tablename="task"):
    """A to-do item, as in the tutorial our users come from."""

    id = Serial(primary_key=True)
    name = Varchar(length=NAME_MAX_LENGTH, null=False)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
