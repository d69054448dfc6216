"""The engine-specific SQL of the task list: the `name` filter and the maintained task count.

The contract is the same on every engine: `name` matches a case-insensitive (ASCII only, as
SQLite's LIKE) substring of the task's name, `%` and `_` match themselves, and the total comes
from the `task_count` row that triggers keep right in the writing transaction (migration
`2026-11-25T20:40:00:000000`), so `GET /task/` never counts the whole table.

- SQLite: an FTS5 table with the `trigram` tokenizer (`task_name_fts`, external content) finds
  the candidate rows of a filter of 3 or more characters through its index; the exact LIKE
  then keeps the true matches (the tokenizer folds Unicode case, LIKE only ASCII: the index
  answers a superset). A filter of 1 or 2 characters has no trigram: a LIKE scan of the table,
  linear in the number of tasks (measured in `bench/scale_data.py`), as is a filter holding a
  NUL character.
- PostgreSQL: a `pg_trgm` GIN index on `ASCII_LOWER_SQL` serves LIKE on that same expression
  with an ASCII-lowered pattern, which is exactly the ASCII case-insensitive match.

Other engines get the plain LIKE: correct, unindexed.
"""

from __future__ import annotations

from piccolo.columns.combination import WhereRaw

_FTS_CANDIDATES = "id IN (SELECT rowid FROM task_name_fts WHERE task_name_fts MATCH {})"
TRIGRAM = 3
"""Characters in a trigram: shorter filters cannot use a trigram index."""
MAX_TRIGRAMS = 8
"""Trigrams of a filter that the index looks up. A phrase of every trigram made FTS5 compare
position lists for each of them in every row holding the first (a long filter over names
that repeat it cost seconds: docs/reliability.md); a few distinct trigrams, spread over the
filter, find nearly the same candidates at a fixed cost, and the exact LIKE
keeps the true matches either way."""

LIKE_ESCAPE = "\\"
"""SQLite has no default LIKE escape character; this one is declared in each ESCAPE clause."""

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = str.maketrans(_UPPER, _UPPER.lower())
ASCII_LOWER_SQL = f"translate(name, '{_UPPER}', '{_UPPER.lower()}')"
"""PostgreSQL: `name` with ASCII letters lowered (lower() and ILIKE also fold non-ASCII).

The trigram index of the PostgreSQL migration is on this exact expression: keep them equal.
"""


def name_filters(engine_type: str, name: str) -> list[WhereRaw]:
    """The WHERE terms (all must hold) selecting tasks whose name contains `name`."""
    if engine_type == "postgres":
        if "\0" in name:  # PostgreSQL text cannot hold a NUL, so no name contains one
            return [WhereRaw("FALSE")]
        pattern = like_pattern(_ascii_lower(name))
        return [WhereRaw(f"{ASCII_LOWER_SQL} LIKE {{}} ESCAPE '{LIKE_ESCAPE}'", pattern)]
    if "\0" in name:
        # SQLite reads a LIKE pattern up to its first NUL ("%\0x%" would match every name);
        # instr() and lower() (ASCII only without ICU) take the whole value. A rare scan.
        return [WhereRaw("instr(lower(name), {}) > 0", _ascii_lower(name))]
    exact = WhereRaw(f"name LIKE {{}} ESCAPE '{LIKE_ESCAPE}'", like_pattern(name))
    if engine_type != "sqlite" or len(name) < TRIGRAM:
        return [exact]
    return [WhereRaw(_FTS_CANDIDATES, _fts_query(name)), exact]


def count_sql() -> str:
    """The query reading the number of tasks (one row, one column `total`)."""
    return "SELECT n AS total FROM task_count WHERE id = 1"


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its `%`, `_` and escape taken literally."""
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _fts_query(name: str) -> str:
    # Every row containing `name` contains each of its trigrams: the rows holding all of a few
    # of them are a superset of the matches, found with a bounded number of index lookups.
    # An FTS5 string (https://sqlite.org/fts5.html#fts5_strings) takes every character
    # literally inside double quotes, a double quote doubled; three characters are one token
    # of the trigram tokenizer, which folds case as it does for the indexed names.
    trigrams = list(dict.fromkeys(name[i : i + TRIGRAM].lower() for i in range(len(name) - 2)))
    if len(trigrams) > MAX_TRIGRAMS:
        step = (len(trigrams) - 1) / (MAX_TRIGRAMS - 1)
        trigrams = [trigrams[round(k * step)] for k in range(MAX_TRIGRAMS)]
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)
