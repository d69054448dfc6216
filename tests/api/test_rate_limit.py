"""The optional per-client rate limit inside the app: 429 answers, exempt paths, one counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.stores.memory import MemoryStore

from apiclub.api import create_app
from apiclub.settings import RateLimit, Settings
from tests.api.conftest import serve

pytestmark = pytest.mark.anyio


def limited_app(tmp_path: Path, limit: RateLimit) -> Litestar:
    return create_app(Settings(data_dir=tmp_path / "data", rate_limit=limit))


@asynccontextmanager
async def client_at(app: Litestar, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests reach the app from `address` (the app is already started)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_request_past_the_limit_gets_429_saying_when_to_retry(tmp_path: Path) -> None:
    async with serve(limited_app(tmp_path, RateLimit(3, "minute"))) as client:
        allowed = [await client.get("/task/") for _ in range(3)]
        refused = await client.get("/task/")
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert allowed[0].headers["ratelimit-limit"] == "3"
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    detail = f"too many requests from 127.0.0.1: at most 3 per minute, retry in {retry_after} s"
    assert refused.json() == {
        "status_code": 429,
        "detail": detail,
        "extra": {"limit": "3/minute", "retry_after": retry_after},
    }
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_health_check_and_schema_are_never_limited(tmp_path: Path) -> None:
    async with serve(limited_app(tmp_path, RateLimit(1, "day"))) as client:
        first = await client.get("/db-check")
        refused = await client.get("/db-check")
        exempt = [await client.get(path) for path in ("/", "/", "/schema/openapi.json")]
    assert (first.status_code, refused.status_code) == (200, 429)
    assert [r.status_code for r in exempt] == [200, 200, 200]
    assert "ratelimit-limit" not in exempt[0].headers


async def test_off_by_default_many_requests_pass(tmp_path: Path) -> None:
    async with serve(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        responses = [await client.get("/task/") for _ in range(150)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit-limit" not in responses[-1].headers


async def test_parallel_requests_to_several_routes_share_one_count(tmp_path: Path) -> None:
    # Litestar builds one middleware (and lock) per route; the limit must hold across them.
    async with serve(limited_app(tmp_path, RateLimit(5, "minute"))) as client:
        paths = ["/task/", "/db-check", "/task/1", "/task/?page=2"] * 10
        responses = await asyncio.gather(*(client.get(path) for path in paths))
    statuses = [r.status_code for r in responses]
    assert len(statuses) - statuses.count(429) == 5, statuses


async def test_another_address_has_its_own_count(tmp_path: Path) -> None:
    app = limited_app(tmp_path, RateLimit(1, "minute"))
    async with serve(app) as client, client_at(app, "198.51.100.7") as other:
        assert (await client.get("/task/")).status_code == 200
        assert (await client.get("/task/")).status_code == 429
        assert (await other.get("/task/")).status_code == 200
        assert (await other.get("/task/")).status_code == 429


async def test_counters_of_quiet_addresses_are_dropped(tmp_path: Path) -> None:
    app = limited_app(tmp_path, RateLimit(5, "second"))
    async with serve(app) as client, client_at(app, "198.51.100.7") as other:
        await client.get("/task/")
        await other.get("/task/")
        store = app.stores.get("rate_limit")
        assert isinstance(store, MemoryStore)
        assert len(store._store) == 2
        await asyncio.sleep(1.1)  # both windows end; only a new request can notice
        await other.get("/task/")
        assert [key.rsplit("::", 1)[-1] for key in store._store] == ["198.51.100.7"]
