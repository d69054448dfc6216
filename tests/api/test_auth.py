"""Bearer tokens inside the app, on SQLite and PostgreSQL: who may write, the 401s, the 429."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from apiclub.api import create_app
from apiclub.errors import StorageError
from apiclub.settings import AuthMode, Settings
from apiclub.tokens import TokenStore
from tests.api.conftest import serve

pytestmark = pytest.mark.anyio

TASK = {"name": "Write the tests"}
CHALLENGE = 'Bearer realm="apiclub"'
INVALID = (
    'Bearer realm="apiclub", error="invalid_token", '
    'error_description="the token is unknown or revoked"'
)


def with_auth(settings: Settings, mode: AuthMode, *domains: str) -> Settings:
    return dataclasses.replace(settings, auth=mode, domains=domains or settings.domains)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@asynccontextmanager
async def client_at(
    settings: Settings, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def stored_names(client: httpx.AsyncClient) -> list[str]:
    page = (await client.get("/task/")).json()
    return [task["name"] for task in page["tasks"]]


async def test_writes_without_a_valid_token_get_401_and_store_nothing(settings: Settings) -> None:
    store = TokenStore(settings.data_dir)
    revoked = store.add("old")
    store.revoke("old")
    store.add("ci")
    async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
        missing = await client.post("/task/", json=TASK)
        basic = await client.post("/task/", json=TASK, headers={"authorization": "Basic eDp5"})
        wrong = await client.post("/task/", json=TASK, headers=bearer("apiclub_wrong"))
        gone = await client.post("/task/", json=TASK, headers=bearer(revoked))
        assert await stored_names(client) == []
    for refused in (missing, basic):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == CHALLENGE
        assert refused.json() == {
            "status_code": 401,
            "detail": "POST, PUT and DELETE need a token here: send Authorization: Bearer "
            "<token> (the server's operator creates one with `apiclub tokens add NAME`)",
            "extra": {"auth": "writes"},
        }
    for refused in (wrong, gone):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == INVALID
        assert refused.json()["detail"] == (
            "the bearer token is not valid: it is unknown or revoked; send one that "
            "`apiclub tokens add NAME` printed on the server"
        )


async def test_the_right_token_writes_and_reads_stay_open(settings: Settings) -> None:
    token = TokenStore(settings.data_dir).add("ci")
    async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
        created = await client.post("/task/", json=TASK, headers=bearer(token))
        task_id = created.json()["id"]
        # The scheme's name is case-insensitive (RFC 7235 2.1).
        renamed = await client.put(
            f"/task/{task_id}",
            json={"name": "renamed"},
            headers={"authorization": f"bearer {token}"},
        )
        refused_put = await client.put(f"/task/{task_id}", json={"name": "no"})
        refused_delete = await client.delete(f"/task/{task_id}")
        read = await client.get(f"/task/{task_id}")
        listed = await client.get("/task/")
        deleted = await client.delete(f"/task/{task_id}", headers=bearer(token))
    assert created.status_code == 201
    assert (renamed.status_code, renamed.json()["name"]) == (200, "renamed")
    assert (refused_put.status_code, refused_delete.status_code) == (401, 401)
    assert (read.status_code, read.json()["name"]) == (200, "renamed")
    assert listed.json()["total"] == 1
    assert deleted.status_code == 200


async def test_no_token_created_yet_refuses_every_write_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "apiclub.auth"):
        async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
            refused = await client.post("/task/", json=TASK, headers=bearer("apiclub_guess"))
            assert await stored_names(client) == []
    assert refused.status_code == 401
    assert "(no token exists on this server yet)" in refused.json()["detail"]
    assert "none exists yet" in caplog.text
    assert "create one with `apiclub tokens add NAME`" in caplog.text


async def test_all_asks_reads_too_but_not_the_health_check_nor_the_schema(
    settings: Settings,
) -> None:
    token = TokenStore(settings.data_dir).add("ci")
    async with serve(create_app(with_auth(settings, AuthMode.ALL))) as client:
        refused = [await client.get(path) for path in ("/task/", "/task/1", "/db-check")]
        allowed = [await client.get(p, headers=bearer(token)) for p in ("/task/", "/db-check")]
        open_paths = [await client.get(path) for path in ("/", "/schema/openapi.json")]
        write = await client.post("/task/", json=TASK)
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert refused[0].json()["detail"].startswith("all requests but GET / and /schema need a token")
    assert [r.status_code for r in allowed] == [200, 200]
    assert [r.status_code for r in open_paths] == [200, 200]
    assert write.status_code == 401


async def test_off_asks_no_token(settings: Settings) -> None:
    TokenStore(settings.data_dir).add("ci")
    async with serve(create_app(with_auth(settings, AuthMode.OFF))) as client:
        created = await client.post("/task/", json=TASK)
        schema = (await client.get("/schema/openapi.json")).json()
    assert created.status_code == 201
    assert "securitySchemes" not in schema.get("components", {})


async def test_auto_is_off_for_localhost(settings: Settings) -> None:
    local = with_auth(settings, AuthMode.AUTO, "localhost", "127.0.0.1")
    async with serve(create_app(local)) as client:
        assert (await client.post("/task/", json=TASK)).status_code == 201


async def test_auto_asks_a_token_once_a_public_name_is_served(settings: Settings) -> None:
    public = with_auth(settings, AuthMode.AUTO, "localhost", "api.example.com")
    token = TokenStore(settings.data_dir).add("ci")
    async with serve(create_app(public)) as client:
        refused = await client.post("/task/", json=TASK)
        created = await client.post("/task/", json=TASK, headers=bearer(token))
    assert (refused.status_code, created.status_code) == (401, 201)


@pytest.mark.sqlite_only
async def test_openapi_declares_the_bearer_scheme_on_the_writes_only(settings: Settings) -> None:
    async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "apiclub_...",
        "description": "A token from `apiclub tokens add NAME`, sent as `Authorization: Bearer "
        "<token>`. Needed for POST, PUT and DELETE (APICLUB_AUTH=writes).",
    }
    security = {
        (path, method): operation.get("security")
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    assert security == {
        ("/", "get"): None,
        ("/db-check", "get"): None,
        ("/task", "get"): None,
        ("/task", "post"): [{"bearer": []}],
        ("/task/{task_id}", "get"): None,
        ("/task/{task_id}", "put"): [{"bearer": []}],
        ("/task/{task_id}", "delete"): [{"bearer": []}],
    }


@pytest.mark.sqlite_only
async def test_openapi_with_all_marks_every_operation_but_health_and_schema(
    settings: Settings,
) -> None:
    async with serve(create_app(with_auth(settings, AuthMode.ALL))) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    marked = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == [{"bearer": []}]
    }
    assert ("/", "get") not in marked
    assert {("/db-check", "get"), ("/task", "get"), ("/task", "post")} <= marked
    assert len(marked) == 6


@pytest.mark.sqlite_only
async def test_failed_attempts_past_ten_a_minute_get_429_even_with_the_right_token(
    settings: Settings,
) -> None:
    token = TokenStore(settings.data_dir).add("ci")
    writes = with_auth(settings, AuthMode.WRITES)
    async with client_at(writes, "198.51.100.7") as client:
        failed = [
            await client.post("/task/", json=TASK, headers=bearer(f"apiclub_{n}"))
            for n in range(10)
        ]
        blocked = await client.post("/task/", json=TASK, headers=bearer("apiclub_more"))
        right = await client.post("/task/", json=TASK, headers=bearer(token))
        read = await client.get("/task/")
    assert [r.status_code for r in failed] == [401] * 10
    assert (blocked.status_code, right.status_code, read.status_code) == (429, 429, 200)
    retry_after = int(blocked.headers["retry-after"])
    assert 55 <= retry_after <= 60
    assert blocked.json() == {
        "status_code": 429,
        "detail": f"too many failed token attempts from 198.51.100.7: at most 10 per minute, "
        f"retry in {retry_after} s with a valid token",
        "extra": {"limit": "10/minute", "retry_after": retry_after},
    }
    assert read.json()["total"] == 0


@pytest.mark.sqlite_only
async def test_under_the_limit_and_from_another_address_the_right_token_still_writes(
    settings: Settings,
) -> None:
    token = TokenStore(settings.data_dir).add("ci")
    writes = with_auth(settings, AuthMode.WRITES)
    app = create_app(writes)
    async with app.lifespan():

        def at(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
            return httpx.AsyncClient(transport=transport, base_url="http://testserver")

        async with at("198.51.100.7") as guesser, at("198.51.100.8") as other:
            nine = [
                await guesser.post("/task/", json=TASK, headers=bearer("apiclub_x"))
                for _ in range(9)
            ]
            still = await guesser.post("/task/", json=TASK, headers=bearer(token))
            for _ in range(2):
                await guesser.post("/task/", json=TASK, headers=bearer("apiclub_x"))
            blocked = await guesser.post("/task/", json=TASK, headers=bearer(token))
            missing = [await other.post("/task/", json=TASK) for _ in range(12)]
            elsewhere = await other.post("/task/", json=TASK, headers=bearer(token))
    assert {r.status_code for r in nine} == {401}
    assert (still.status_code, blocked.status_code) == (201, 429)
    # Requests with no token at all are not guesses: they never lock anyone out.
    assert {r.status_code for r in missing} == {401}
    assert elsewhere.status_code == 201


async def test_a_corrupt_token_file_stops_the_start_up(settings: Settings) -> None:
    store = TokenStore(settings.data_dir)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("not json")
    app = create_app(with_auth(settings, AuthMode.WRITES))
    expected = pytest.RaisesExc(StorageError, match="tokens.json is not an apiclub token file")
    # Litestar re-raises a start-up hook's error inside an exception group (its task group).
    with pytest.RaisesGroup(expected, allow_unwrapped=True):
        async with serve(app):
            pytest.fail("the app must not serve with an unreadable token file")


async def test_last_use_is_written_at_shutdown_not_per_request(settings: Settings) -> None:
    store = TokenStore(settings.data_dir)
    token = store.add("ci")
    last_use = store.storage.path("auth/last-use.json")
    async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
        for number in range(5):
            response = await client.post(
                "/task/", json={"name": f"t{number}"}, headers=bearer(token)
            )
            assert response.status_code == 201
        assert not last_use.exists()
    [listed] = store.list_tokens()
    assert listed.last_used_at is not None
    assert listed.last_used_at >= listed.created_at


@pytest.mark.sqlite_only
async def test_last_use_is_written_by_the_running_server_once_per_interval(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apiclub.api.auth.LAST_USE_FLUSH_INTERVAL", 0.2)
    store = TokenStore(settings.data_dir)
    token = store.add("ci")
    async with serve(create_app(with_auth(settings, AuthMode.WRITES))) as client:
        assert (await client.post("/task/", json=TASK, headers=bearer(token))).status_code == 201
        deadline = asyncio.get_running_loop().time() + 5
        while store.list_tokens()[0].last_used_at is None:
            assert asyncio.get_running_loop().time() < deadline, "last use never written"
            await asyncio.sleep(0.05)
        written = store.storage.path("auth/last-use.json").stat().st_mtime_ns
        await asyncio.sleep(0.5)  # two more intervals, no new use: nothing to write
        assert store.storage.path("auth/last-use.json").stat().st_mtime_ns == written
