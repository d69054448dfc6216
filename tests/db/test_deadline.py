"""A read past its deadline is stopped by the database itself, and frees its connection."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import asyncpg
import pytest

from apiclub.db import Postgres, bind_engine, create_sqlite_engine, unavailable_reason
from apiclub.db.search import MAX_TRIGRAMS, name_filters
from apiclub.db.sqlite.deadline import interrupted
from apiclub.db.tables import Task
from tests.postgres import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]

pytestmark = pytest.mark.anyio

# Counts for ever: only an interruption ends it.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
COUNT_TO_1000 = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
    "SELECT max(x) AS n FROM c"
)
BOUND = 10.0  # seconds a test waits before calling the read unbounded


async def test_sqlite_read_past_its_deadline_is_interrupted_and_the_reader_serves_again(
    tmp_path: Path,
) -> None:
    engine = create_sqlite_engine(tmp_path / "api.db")
    engine.read_deadline = 0.2
    bind_engine(engine)
    try:
        start = time.monotonic()
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(engine.read_snapshot(Task.raw(ENDLESS)), BOUND)
        assert interrupted(caught.value), caught.value
        assert time.monotonic() - start < BOUND / 2
        # Every reader is usable again: as many reads as readers, at once, all answered.
        reads = [engine.read_snapshot(Task.raw("SELECT 1 AS one")) for _ in range(8)]
        assert await asyncio.gather(*reads) == [[[{"one": 1}]]] * 8
    finally:
        engine.close()


async def test_sqlite_read_within_its_deadline_is_answered(tmp_path: Path) -> None:
    engine = create_sqlite_engine(tmp_path / "api.db")
    bind_engine(engine)
    try:
        rows = await engine.read_snapshot(Task.raw(COUNT_TO_1000))
        assert rows == [[{"n": 1000}]]
    finally:
        engine.close()


async def test_postgres_read_past_its_deadline_is_stopped_by_the_server(postgres_url: str) -> None:
    engine = Postgres(postgres_url, read_deadline=0.2)
    await engine.start()
    try:
        bind_engine(engine)
        start = time.monotonic()
        slow = Task.raw("SELECT pg_sleep(30) AS slept")
        with pytest.raises(asyncpg.QueryCanceledError) as caught:
            await asyncio.wait_for(engine.read_snapshot(slow, Task.raw("SELECT 1")), BOUND)
        assert time.monotonic() - start < BOUND / 2
        assert unavailable_reason(caught.value) == "the query took too long and was stopped"
        # A bounded read (a primary-key lookup) has no such limit, and the pool serves again.
        assert await engine.read_snapshot(Task.raw("SELECT pg_sleep(0.3) AS s"), bounded=True)
    finally:
        await engine.close()


def test_a_long_filter_asks_the_index_for_a_few_trigrams_only() -> None:
    name = "".join(chr(0x4E00 + i) for i in range(200))  # 198 distinct trigrams
    candidates, exact = name_filters("sqlite", name)
    (fts_query,) = candidates.querystring.args
    assert len(re.findall(r'"[^"]{3}"', fts_query)) == MAX_TRIGRAMS
    assert exact.querystring.args == [f"%{name}%"]
