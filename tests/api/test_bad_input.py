"""Bad input answers 4xx with a JSON body naming the problem, and never stores anything."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import MAX_BODY_SIZE

pytestmark = pytest.mark.anyio

Client = httpx.AsyncClient


def messages(body: dict[str, Any]) -> str:
    extra = body.get("extra") or []
    return " ".join([body["detail"], *(str(item.get("message")) for item in extra)])


async def assert_nothing_stored(client: Client) -> None:
    assert (await client.get("/task/")).json()["total"] == 0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, "missing required field `name`"),
        ({"name": ""}, "`name` must be at least 1 character long"),
        ({"name": "   \t\n"}, "`name` must not be empty or only whitespace"),
        ({"name": "x" * 201}, "`name` must be at most 200 characters long"),
        ({"name": 123}, "`name` must be a string, not a whole number"),
        ({"name": None}, "`name` must be a string, not null"),
        ({"name": ["a"]}, "`name` must be a string, not an array"),
        ({"title": "typo"}, "missing required field `name`"),
        (
            ["name"],
            'the request body must be a JSON object like {"name": "Write the tests"}, not an array',
        ),
        (
            "name",
            'the request body must be a JSON object like {"name": "Write the tests"}, not a string',
        ),
        (None, 'the request body must be a JSON object like {"name": "Write the tests"}, not null'),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_invalid_task_body_is_400(
    client: Client, method: str, payload: object, expected: str
) -> None:
    path = "/task/" if method == "POST" else "/task/1"
    content = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    response = await client.request(method, path, content=content, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert body["status_code"] == 400
    assert expected in messages(body)
    await assert_nothing_stored(client)


async def test_name_of_exactly_the_maximum_length_is_accepted(client: Client) -> None:
    response = await client.post("/task/", json={"name": "x" * 200})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "request body is empty"),
        (b"{", "not valid JSON"),
        (b'{"name": "a",}', "not valid JSON"),
        (b"{'name': 'a'}", "not valid JSON"),
        (b'{"name": "\xff"}', "it must be UTF-8"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[" * 3000, "not valid JSON"),
        (b"[" * 1900 + b"]" * 1900, "nested too deeply"),
    ],
)
async def test_malformed_json_is_400(client: Client, content: bytes, expected: str) -> None:
    response = await client.post(
        "/task/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert expected in messages(response.json())
    await assert_nothing_stored(client)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": 10**9 + 1}, "`page` must be a whole number at most 1000000000"),
        ({"page": 10**30}, "page"),
        ({"page": "two"}, "`page` must be a whole number, not a string"),
        ({"page": "1.5"}, "`page` must be a whole number, not a string"),
        ({"page_size": 0}, "`page_size` must be a whole number at least 1"),
        ({"page_size": 101}, "`page_size` must be a whole number at most 100"),
        ({"page_size": ""}, "`page_size` must be a whole number, not a string"),
    ],
)
async def test_bad_paging_is_400(
    client: Client, params: dict[str, int | str], expected: str
) -> None:
    response = await client.get("/task/", params=params)
    assert response.status_code == 400
    body = response.json()
    assert expected in messages(body)
    assert {item["key"] for item in body["extra"]} <= {"page", "page_size"}


async def test_oversized_body_is_413_and_stores_nothing(client: Client) -> None:
    payload = {"name": "big", "padding": "x" * MAX_BODY_SIZE}
    response = await client.post("/task/", json=payload)
    assert response.status_code == 413
    assert response.json() == {
        "status_code": 413,
        "detail": f"request body is larger than {MAX_BODY_SIZE} bytes",
        "extra": {"max_body_size": MAX_BODY_SIZE},
    }
    await assert_nothing_stored(client)


async def test_body_just_under_the_limit_is_accepted(client: Client) -> None:
    prefix = b'{"name": "fits", "padding": "'
    content = prefix + b"x" * (MAX_BODY_SIZE - len(prefix) - 2) + b'"}'
    assert len(content) == MAX_BODY_SIZE
    response = await client.post(
        "/task/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["/task/abc", "/task/1.5", "/nowhere"])
async def test_unknown_paths_are_json_404(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "Not Found", "extra": None}


async def test_wrong_method_is_405_with_allow(client: Client) -> None:
    response = await client.patch("/task/1", json={"name": "x"})
    assert response.status_code == 405
    assert response.json()["detail"] == "Method Not Allowed"
    assert "PUT" in response.headers["allow"]
