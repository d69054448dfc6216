"""The same 10,000 tasks in every stack's database, written once and copied.

Rows go in with plain sqlite3 in one transaction: 10,000 POSTs would take longer than the whole
quick run. Each stack's timestamp format is the one its own ORM writes and reads back.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from bench.tutorial.models import Task

TASKS = 10_000
WORDS = ("Write the tests", "Review the pull request", "Renew the certificate", "Water the plants")


def names(count: int) -> list[str]:
    """Task names with some variety, so a `name=` filter selects a part of them."""
    return [f"{WORDS[i % len(WORDS)]} #{i}" for i in range(count)]


def seed_tutorial(path: Path, count: int = TASKS) -> None:
    """The tutorial's table (its SQLAlchemy model) holding `count` tasks."""
    engine = create_engine(f"sqlite:///{path}")
    Task.metadata.create_all(engine)
    engine.dispose()
    # SQLAlchemy's SQLite DateTime stores naive text, microseconds included.
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _insert(path, [(name, now) for name in names(count)])


def seed_apiclub(data_dir: Path, count: int = TASKS) -> Path:
    """apiclub's database (its own migrations) holding `count` tasks; returns the file."""
    subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "apiclub", "migrate", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Piccolo's Timestamptz on SQLite: str() of the aware UTC datetime.
    now = str(datetime.now(UTC))
    path = data_dir / "api.db"
    _insert(path, [(name, now) for name in names(count)])
    return path


def copy_database(template: Path, target: Path) -> None:
    """A stack's own copy of a seeded file (writes in one stack never show in another)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


def _insert(path: Path, rows: list[tuple[str, str]]) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO task (name, created_at) VALUES (?, ?)", rows)
