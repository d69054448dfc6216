"""Each engine's own largest task id: at it a task is served, above it the answer is a clear 404
(a path) or 400 (a cursor), never a 500, on SQLite (64-bit rowid) and PostgreSQL (`serial`)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from apiclub.db import bound_engine
from apiclub.db.tables import Task

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient
INSERT = "INSERT INTO task (id, name, created_at) VALUES ({}, {}, CURRENT_TIMESTAMP)"


async def test_a_task_at_the_engines_largest_id_is_served(client: Client, max_task_id: int) -> None:
    await Task.raw(INSERT, max_task_id, "at the bound")
    for method in ("GET", "PUT"):
        response = await client.request(method, f"/task/{max_task_id}", json={"name": "renamed"})
        assert response.status_code == 200, response.text
        assert response.json()["id"] == max_task_id
    assert (await client.delete(f"/task/{max_task_id}")).status_code == 200
    assert (await client.get(f"/task/{max_task_id}")).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_id_just_above_the_engines_largest_is_404_not_500(
    client: Client, max_task_id: int, method: str
) -> None:
    await Task.raw(INSERT, max_task_id, "at the bound")
    above = max_task_id + 1
    response = await client.request(method, f"/task/{above}", json={"name": "x"})
    assert response.status_code == 404, response.text
    assert response.json() == {
        "status_code": 404,
        "detail": "Task not found",
        "extra": {"id": above},
    }
    assert (await client.get(f"/task/{max_task_id}")).status_code == 200  # still there


async def test_the_bound_is_the_columns_own(client: Client, max_task_id: int) -> None:
    """The engine's column really cannot hold one more: the bound is not an arbitrary cap."""
    expected = OverflowError if bound_engine().engine_type == "sqlite" else asyncpg.DataError
    with pytest.raises(expected):
        await Task.raw(INSERT, max_task_id + 1, "above the bound")
    await Task.raw(INSERT, max_task_id, "at the bound")  # the twin: the bound itself fits


async def test_a_cursor_at_the_bound_is_an_empty_page_above_it_400(
    client: Client, max_task_id: int
) -> None:
    await Task.raw(INSERT, max_task_id, "at the bound")
    at = await client.get("/task/", params={"after_id": max_task_id})
    assert at.status_code == 200, at.text
    assert (at.json()["tasks"], at.json()["total"]) == ([], 1)
    below = await client.get("/task/", params={"after_id": max_task_id - 1})
    assert [task["id"] for task in below.json()["tasks"]] == [max_task_id]
    above = await client.get("/task/", params={"after_id": max_task_id + 1})
    assert above.status_code == 400, above.text
    assert f"`after_id` must be a whole number at most {max_task_id}" in above.text
