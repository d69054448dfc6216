from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient


async def create(client: Client, name: str) -> dict[str, object]:
    response = await client.post("/task/", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_root_answers_ok(client: Client) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_db_check_round_trips(client: Client) -> None:
    response = await client.get("/db-check")
    assert response.status_code == 200
    assert response.json() == {"results": [1]}


async def test_create_returns_201_and_the_task(client: Client) -> None:
    before = datetime.now(UTC)
    response = await client.post("/task/", json={"name": "Write the tests"})
    assert response.status_code == 201
    task = response.json()
    assert set(task) == {"id", "name", "created_at"}
    assert task["id"] == 1
    assert task["name"] == "Write the tests"
    assert task["created_at"].endswith("+00:00")
    created = datetime.fromisoformat(task["created_at"])
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)


@pytest.mark.parametrize("path", ["/task", "/task/"])
async def test_list_and_create_answer_with_and_without_slash(client: Client, path: str) -> None:
    created = await client.post(path, json={"name": path})
    assert created.status_code == 201
    listed = await client.get(path)
    assert listed.status_code == 200
    assert listed.json()["tasks"] == [created.json()]


async def test_read_update_delete(client: Client) -> None:
    task = await create(client, "draft")
    task_id = task["id"]

    assert (await client.get(f"/task/{task_id}")).json() == task

    updated = await client.put(f"/task/{task_id}", json={"name": "final"})
    assert updated.status_code == 200
    assert updated.json() == {**task, "name": "final"}
    assert (await client.get(f"/task/{task_id}")).json()["name"] == "final"

    deleted = await client.delete(f"/task/{task_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {**task, "name": "final"}
    assert (await client.get(f"/task/{task_id}")).status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("task_id", ["999", "0", "-1", str(2**63 - 1), str(2**63), "9" * 40])
async def test_missing_task_is_404(client: Client, method: str, task_id: str) -> None:
    await create(client, "exists")
    response = await client.request(method, f"/task/{task_id}", json={"name": "x"})
    assert response.status_code == 404
    assert response.json() == {
        "status_code": 404,
        "detail": "Task not found",
        "extra": {"id": int(task_id)},
    }


async def test_list_pages_in_id_order_and_counts_everything(client: Client) -> None:
    for index in range(25):
        await create(client, f"task {index}")

    page = (await client.get("/task/", params={"page": 2, "page_size": 10})).json()
    assert page["total"] == 25
    assert (page["page"], page["page_size"]) == (2, 10)
    assert [task["id"] for task in page["tasks"]] == list(range(11, 21))

    last = (await client.get("/task/", params={"page": 3, "page_size": 10})).json()
    assert [task["id"] for task in last["tasks"]] == list(range(21, 26))
    beyond = (await client.get("/task/", params={"page": 10**9, "page_size": 100})).json()
    assert beyond == {"tasks": [], "total": 25, "page": 10**9, "page_size": 100}


async def test_list_defaults_to_first_page_of_ten(client: Client) -> None:
    for index in range(12):
        await create(client, f"task {index}")
    page = (await client.get("/task")).json()
    assert (page["page"], page["page_size"], page["total"]) == (1, 10, 12)
    assert len(page["tasks"]) == 10


async def test_name_filters_by_substring_and_total_counts_the_filtered_set(client: Client) -> None:
    for name in ["buy milk", "buy bread", "call mum", "Buy stamps", "sell car"]:
        await create(client, name)

    page = (await client.get("/task/", params={"name": "buy", "page_size": 2})).json()
    assert page["total"] == 3  # LIKE is case-insensitive for ASCII, as in the tutorial
    assert [task["name"] for task in page["tasks"]] == ["buy milk", "buy bread"]
    second = (await client.get("/task/", params={"name": "buy", "page_size": 2, "page": 2})).json()
    assert [task["name"] for task in second["tasks"]] == ["Buy stamps"]
    assert (await client.get("/task/", params={"name": "nothing"})).json()["total"] == 0


@pytest.mark.parametrize(
    ("needle", "expected"),
    [("%", ["100%"]), ("_", ["a_b"]), ("\\", ["back\\slash"]), ("a_", ["a_b"]), ("0%", ["100%"])],
)
async def test_name_filter_matches_like_wildcards_literally(
    client: Client, needle: str, expected: list[str]
) -> None:
    for name in ["100%", "a_b", "axb", "back\\slash", "plain"]:
        await create(client, name)
    page = (await client.get("/task/", params={"name": needle})).json()
    assert [task["name"] for task in page["tasks"]] == expected
    assert page["total"] == len(expected)


async def test_empty_name_filter_lists_everything(client: Client) -> None:
    await create(client, "one")
    assert (await client.get("/task/", params={"name": ""})).json()["total"] == 1


async def test_name_is_stripped(client: Client) -> None:
    task = await create(client, "  padded  ")
    assert task["name"] == "padded"


async def test_unknown_fields_are_ignored(client: Client) -> None:
    task = await create(client, "original")
    echoed = {**task, "name": "renamed", "colour": "blue"}
    response = await client.put(f"/task/{task['id']}", json=echoed)
    assert response.status_code == 200
    assert response.json() == {**task, "name": "renamed"}


async def test_unicode_names_round_trip(client: Client) -> None:
    task = await create(client, "café ☕ 日本")
    assert (await client.get(f"/task/{task['id']}")).json()["name"] == "café ☕ 日本"


async def test_openapi_is_served(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "apiclub"
    assert {"/", "/db-check", "/task", "/task/{task_id}"} <= set(document["paths"])
    assert (await client.get("/schema")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/task/999"), ("POST", "/task/")]
)
async def test_answers_forbid_sniffing_and_name_no_server(
    client: Client, method: str, path: str
) -> None:
    response = await client.request(method, path, content=b"{")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers
