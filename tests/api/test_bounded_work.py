"""Every list request does bounded work: over-long filters refused, slow reads stopped (503)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apiclub.db import bound_engine
from apiclub.db.tables import NAME_MAX_LENGTH, Task

pytestmark = pytest.mark.anyio

LONG_NAME = "a" * NAME_MAX_LENGTH


async def create_long_names(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(count):
        assert (await client.post("/task/", json={"name": LONG_NAME})).status_code == 201


async def test_a_filter_longer_than_any_name_is_refused_naming_the_limit(
    client: httpx.AsyncClient,
) -> None:
    # The attack of issue 14: 8,000 characters against names that repeat its one trigram.
    await create_long_names(client, 20)
    response = await client.get("/task/", params={"name": "a" * 8000})
    assert response.status_code == 400
    (error,) = response.json()["extra"]
    assert error["key"] == "name"
    assert f"at most {NAME_MAX_LENGTH} characters" in error["message"]


async def test_a_filter_as_long_as_a_name_is_answered(client: httpx.AsyncClient) -> None:
    await create_long_names(client, 20)
    response = await client.get("/task/", params={"name": LONG_NAME})
    assert response.status_code == 200
    assert response.json()["total"] == 20
    longer = await client.get("/task/", params={"name": LONG_NAME[:-1] + "b"})
    assert longer.json()["total"] == 0


@pytest.mark.sqlite_only
async def test_a_read_past_its_deadline_answers_503_and_the_next_is_served(
    client: httpx.AsyncClient,
) -> None:
    engine = bound_engine()
    # Enough rows that a scan runs past SQLite's first look at the clock (`CHECK_EVERY`).
    await engine.write(Task.insert(*(Task(name=LONG_NAME) for _ in range(2000))))
    engine.read_deadline = 0.0  # every read on a reader thread is past its deadline at once
    reads = [client.get("/task/", params={"name": "a"}) for _ in range(6)]
    for response in await asyncio.gather(*reads):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "took too long" in response.json()["detail"]
    engine.read_deadline = 2.0
    response = await client.get("/task/", params={"name": "a"})
    assert response.status_code == 200
    assert response.json()["total"] == 2000
