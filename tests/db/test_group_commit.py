"""Group commit on a real SQLite file: shared commits, failures that stay alone, nothing lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest

from apiclub.db.sqlite.group_commit import GroupCommitWriter

pytestmark = pytest.mark.anyio

WRITES = 50
INSERT = "INSERT INTO item (id, name) VALUES (?, ?) RETURNING id, name"


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=5)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=1")
    return connection


def no_check() -> None:
    pass


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "items.db"
    with closing(connect(path)) as connection:
        connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        connection.execute(
            "CREATE TABLE tag (item_id INTEGER REFERENCES item (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    return path


@pytest.fixture
def writer(database: Path) -> Iterator[GroupCommitWriter]:
    writer = GroupCommitWriter(partial(connect, database), no_check, "test-writer")
    yield writer
    writer.close(timeout=10)


@pytest.fixture
def gate() -> threading.Event:
    """Holds the writer's thread in its check until set: what is queued meanwhile is a batch."""
    return threading.Event()


@pytest.fixture
def gated_writer(database: Path, gate: threading.Event) -> Iterator[GroupCommitWriter]:
    writer = GroupCommitWriter(partial(connect, database), partial(gate.wait, 10), "test-writer")
    yield writer
    gate.set()
    writer.close(timeout=10)


async def queue_behind_the_gate(
    writer: GroupCommitWriter, gate: threading.Event, *writes: tuple[str, list[object]]
) -> list[object]:
    """Run `writes` as one batch: a first write takes the thread to the gate, the rest queue."""
    first = asyncio.ensure_future(writer.write(INSERT, [1000, "opens the gate"]))
    await asyncio.sleep(0.2)  # the thread took it and waits at the gate
    batch = [asyncio.ensure_future(writer.write(sql, args)) for sql, args in writes]
    await asyncio.sleep(0)
    gate.set()
    await first
    return await asyncio.gather(*batch, return_exceptions=True)


def stored(path: Path) -> dict[int, str]:
    with closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT id, name FROM item").fetchall())


async def test_writes_queued_during_a_commit_share_the_next_one(
    gated_writer: GroupCommitWriter, gate: threading.Event, database: Path
) -> None:
    writes = [(INSERT, [i, f"item {i}"]) for i in range(WRITES)]
    rows = await queue_behind_the_gate(gated_writer, gate, *writes)
    assert [dict(row[0]) for row in rows] == [  # type: ignore[index]
        {"id": i, "name": f"item {i}"} for i in range(WRITES)
    ]
    assert len(stored(database)) == WRITES + 1
    assert gated_writer.commits == 2  # the first write's, then all the others' together


async def test_concurrent_writes_all_land(writer: GroupCommitWriter, database: Path) -> None:
    rows = await asyncio.gather(*(writer.write(INSERT, [i, f"item {i}"]) for i in range(WRITES)))
    assert [dict(row[0]) for row in rows] == [{"id": i, "name": f"item {i}"} for i in range(WRITES)]
    assert stored(database) == {i: f"item {i}" for i in range(WRITES)}
    assert 1 <= writer.commits <= WRITES


async def test_writes_one_after_another_each_commit(
    writer: GroupCommitWriter, database: Path
) -> None:
    for i in range(3):
        await writer.write(INSERT, [i, "alone"])
        assert i in stored(database)  # committed before the caller heard of it
    assert writer.commits == 3


async def test_a_failing_write_fails_alone_and_the_others_commit(
    gated_writer: GroupCommitWriter, gate: threading.Event, database: Path
) -> None:
    outcomes = await queue_behind_the_gate(
        gated_writer,
        gate,
        (INSERT, [1, "good"]),
        (INSERT, [1000, "duplicate id"]),
        (INSERT, [2, "good too"]),
    )
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert [dict(row[0]) for row in (outcomes[0], outcomes[2])] == [  # type: ignore[index]
        {"id": 1, "name": "good"},
        {"id": 2, "name": "good too"},
    ]
    assert stored(database) == {1000: "opens the gate", 1: "good", 2: "good too"}
    assert gated_writer.commits == 2  # the two good ones ran again, and committed together


async def test_a_failed_commit_fails_every_write_in_it_and_stores_none(
    writer: GroupCommitWriter, database: Path
) -> None:
    # A deferred foreign key is checked at COMMIT: the statement runs, the commit fails.
    outcomes = await asyncio.gather(
        writer.write("INSERT INTO tag (item_id) VALUES (?)", [999]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], sqlite3.IntegrityError)
    assert "FOREIGN KEY" in str(outcomes[0])
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT count(*) FROM tag").fetchone() == (0,)
    # The connection is usable again.
    assert [dict(row) for row in await writer.write(INSERT, [3, "after"])] == [
        {"id": 3, "name": "after"}
    ]


async def test_a_failed_check_fails_the_batch_and_writes_nothing(database: Path) -> None:
    allowed = False

    def check() -> None:
        if not allowed:
            raise sqlite3.OperationalError("attempt to write a readonly database")

    writer = GroupCommitWriter(partial(connect, database), check, "test-writer")
    try:
        outcomes = await asyncio.gather(
            *(writer.write(INSERT, [i, "refused"]) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
        assert len({id(outcome) for outcome in outcomes}) == 5  # each caller its own copy
        assert stored(database) == {}
        allowed = True
        await writer.write(INSERT, [1, "accepted"])
        assert stored(database) == {1: "accepted"}
    finally:
        writer.close(timeout=10)


async def test_close_commits_what_was_queued(database: Path) -> None:
    writer = GroupCommitWriter(partial(connect, database), no_check, "test-writer")
    pending = [asyncio.ensure_future(writer.write(INSERT, [i, "queued"])) for i in range(20)]
    await asyncio.sleep(0)  # queued, perhaps not yet committed
    await asyncio.to_thread(writer.close, 10)
    assert len(stored(database)) == 20
    assert all(len(rows) == 1 for rows in await asyncio.gather(*pending))


async def test_a_cancelled_caller_does_not_stop_the_writer(
    writer: GroupCommitWriter, database: Path
) -> None:
    task = asyncio.ensure_future(writer.write(INSERT, [1, "cancelled caller"]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The write was queued: it may have landed, and the writer serves the next one.
    await writer.write(INSERT, [2, "next"])
    assert stored(database)[2] == "next"


@pytest.mark.parametrize("failing_check", [1, 2], ids=["after-begin", "before-commit"])
async def test_the_file_is_checked_after_begin_and_before_commit(
    database: Path, failing_check: int
) -> None:
    # BEGIN IMMEDIATE may wait for another process's lock; the file may go meanwhile.
    checks = 0

    def gone_meanwhile() -> None:
        nonlocal checks
        checks += 1
        if checks == failing_check:
            raise sqlite3.OperationalError("the file went meanwhile")

    writer = GroupCommitWriter(partial(connect, database), gone_meanwhile, "test-writer")
    try:
        with pytest.raises(sqlite3.OperationalError, match="went meanwhile"):
            await writer.write(INSERT, [1, "not written"])
        assert stored(database) == {}
        await writer.write(INSERT, [2, "written"])  # the connection is usable again
        assert stored(database) == {2: "written"}
        assert checks == failing_check + 2  # the failed group's checks, then two for the next
    finally:
        writer.close(timeout=10)


async def test_a_write_after_close_fails_at_once(database: Path) -> None:
    writer = GroupCommitWriter(partial(connect, database), no_check, "test-writer")
    writer.close(timeout=10)
    with pytest.raises(sqlite3.OperationalError, match="closed") as refused:
        await writer.write(INSERT, [1, "too late"])
    assert refused.value.sqlite_errorcode == sqlite3.SQLITE_BUSY  # answered 503, retry later
    assert stored(database) == {}
