"""`after_id`, the list's cursor, and the `name` filter's short and odd needles, over the API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_bad_input import messages
from tests.api.test_contract import create

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient


async def page(client: Client, **params: Any) -> dict[str, Any]:
    response = await client.get("/task/", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_walking_with_after_id_visits_every_task_once_in_id_order(client: Client) -> None:
    ids = [(await create(client, f"task {index}"))["id"] for index in range(23)]
    for gone in ids[4:9]:  # a gap in the ids: the cursor steps over it
        assert (await client.delete(f"/task/{gone}")).status_code == 200
    remaining = ids[:4] + ids[9:]

    seen: list[int] = []
    after_id = 0
    while True:
        body = await page(client, after_id=after_id, page_size=5)
        assert (body["total"], body["page"], body["page_size"]) == (len(remaining), 1, 5)
        if not body["tasks"]:
            break
        seen += [task["id"] for task in body["tasks"]]
        after_id = body["tasks"][-1]["id"]
    assert seen == remaining


async def test_after_id_agrees_with_page_and_combines_with_name(client: Client) -> None:
    for index in range(30):
        await create(client, f"{'even' if index % 2 == 0 else 'odd'} {index}")
    by_page = await page(client, page=3, page_size=5)
    by_cursor = await page(client, after_id=10, page_size=5)
    assert by_cursor["tasks"] == by_page["tasks"]
    second_after_cursor = await page(client, after_id=10, page_size=5, page=2)
    assert [task["id"] for task in second_after_cursor["tasks"]] == list(range(16, 21))
    evens = await page(client, name="EVEN", after_id=20, page_size=100)
    assert [task["id"] for task in evens["tasks"]] == list(range(21, 31, 2))
    assert evens["total"] == 15  # the filtered set, not the part after the cursor


@pytest.mark.parametrize("after_id", [0, 3, "the engine's largest id"])
async def test_after_id_at_or_past_the_ends(
    client: Client, after_id: int | str, max_task_id: int
) -> None:
    after_id = max_task_id if isinstance(after_id, str) else after_id
    for index in range(3):
        await create(client, f"task {index}")
    body = await page(client, after_id=after_id)
    assert [task["id"] for task in body["tasks"]] == list(range(after_id + 1, 4))
    assert body["total"] == 3


@pytest.mark.parametrize(
    ("params", "key", "expected"),
    [
        ({"after_id": -1}, "after_id", "`after_id` must be a whole number at least 0"),
        ({"after_id": "largest + 1"}, "after_id", "at most {largest}"),
        ({"after_id": "9" * 40}, "after_id", "at most {largest}"),
        ({"after_id": "abc"}, "after_id", "must be a whole number, not a string"),
        ({"after_id": "1.5"}, "after_id", "must be a whole number, not a string"),
        ({"after_id": ""}, "after_id", "must be a whole number, not a string"),
    ],
)
async def test_bad_after_id_is_400_naming_it(
    client: Client, params: dict[str, Any], key: str, expected: str, max_task_id: int
) -> None:
    # The bound is the engine's (tests.api.conftest.MAX_TASK_ID).
    if params["after_id"] == "largest + 1":
        params = {"after_id": max_task_id + 1}
    expected = expected.format(largest=max_task_id)
    await create(client, "exists")
    response = await client.get("/task/", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["status_code"] == 400
    assert expected in messages(body)
    assert {item["key"] for item in body["extra"]} == {key}


async def test_openapi_documents_after_id(client: Client, max_task_id: int) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    parameters = {p["name"]: p for p in document["paths"]["/task"]["get"]["parameters"]}
    assert "cursor" in parameters["after_id"]["description"]
    assert parameters["after_id"]["schema"]["minimum"] == 0
    assert parameters["after_id"]["schema"]["maximum"] == max_task_id
    assert "1 or 2 characters" in parameters["name"]["description"]


NAMES = ["ab", "xaby", "ABC", "b", "a_b", "100%"]


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("a", ["ab", "xaby", "ABC", "a_b"]),
        ("B", ["ab", "xaby", "ABC", "b", "a_b"]),
        ("ab", ["ab", "xaby", "ABC"]),
        ("_", ["a_b"]),
        ("%", ["100%"]),
        ("abc", ["ABC"]),
    ],
)
async def test_short_and_odd_filters_match_substrings(
    client: Client, needle: str, expected: list[str]
) -> None:
    for name in NAMES:
        await create(client, name)
    body = await page(client, name=needle)
    assert [task["name"] for task in body["tasks"]] == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize("needle", ["ba", "c_", "%0", "\0", "a\0b", "aby!"])
async def test_short_and_odd_filters_match_nothing_else(client: Client, needle: str) -> None:
    for name in NAMES:
        await create(client, name)
    assert await page(client, name=needle) == {
        "tasks": [],
        "total": 0,
        "page": 1,
        "page_size": 10,
    }


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_name_holding_nul_is_400(client: Client, method: str) -> None:
    task = await create(client, "a\u2400b")  # the visible symbol for NUL is fine
    path = "/task/" if method == "POST" else f"/task/{task['id']}"
    response = await client.request(method, path, json={"name": "a\0b"})
    assert response.status_code == 400
    [problem] = response.json()["extra"]
    assert (problem["key"], problem["message"]) == (
        "name",
        "`name` must not contain a NUL character (U+0000)",
    )
    assert (await page(client))["tasks"] == [task]
