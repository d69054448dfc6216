"""Writes take `application/json` only: a text/plain POST (no CORS preflight) is refused."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

BODY = b'{"name": "from a web page"}'


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # issue 14: a cross-site form or fetch sends this without a preflight
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/task/"), ("PUT", "/task/1")])
async def test_a_body_that_is_not_json_is_415_and_nothing_is_stored(
    client: httpx.AsyncClient, content_type: str | None, method: str, path: str
) -> None:
    if method == "PUT":
        assert (await client.post("/task/", json={"name": "original"})).status_code == 201
    headers = {"content-type": content_type} if content_type else {}
    response = await client.request(method, path, content=BODY, headers=headers)
    assert response.status_code == 415
    body = response.json()
    assert body["status_code"] == 415
    assert "Content-Type: application/json" in body["detail"]
    assert body["extra"] == {"expected": "application/json"}
    listed = (await client.get("/task/")).json()
    assert [task["name"] for task in listed["tasks"]] == (["original"] if method == "PUT" else [])


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_a_json_body_is_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post("/task/", content=BODY, headers={"content-type": content_type})
    assert response.status_code == 201
    assert response.json()["name"] == "from a web page"
