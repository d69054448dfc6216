"""The redirect listener and the API over real sockets: writes, limits, stop, restart."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl

import httpx
import pytest

from apiclub.settings import Settings
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio


async def test_port_80_redirects_to_the_https_listener(files_settings: Settings) -> None:
    async with serving(files_settings) as server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.redirect_port}/task/?page=2"
        get = await client.get(url, headers={"host": "localhost"})
        post = await client.post(url, headers={"host": "localhost"}, json={"name": "x"})
        evil = await client.get(url, headers={"host": "evil.example"})
    assert (get.status_code, get.headers["location"]) == (
        301,
        f"https://localhost:{server.api_port}/task/?page=2",
    )
    assert (post.status_code, post.headers["location"]) == (
        308,
        f"https://localhost:{server.api_port}/task/?page=2",
    )
    assert evil.status_code == 421
    assert "location" not in evil.headers


async def test_redirect_names_the_public_port_when_set(files_settings: Settings) -> None:
    settings = Settings(**{**files_settings.__dict__, "public_https_port": 443})
    async with serving(settings) as server, httpx.AsyncClient() as client:
        response = await client.get(
            f"http://127.0.0.1:{server.redirect_port}/a?b=c", headers={"host": "localhost"}
        )
    assert response.headers["location"] == "https://localhost/a?b=c"


async def test_concurrent_writers_all_get_201_and_all_are_stored(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    limits = httpx.Limits(max_connections=50)
    async with serving(files_settings, redirect=False) as server:
        base = f"https://localhost:{server.api_port}"
        gate = asyncio.Semaphore(50)
        async with httpx.AsyncClient(verify=trust_context, limits=limits, timeout=60) as client:

            async def create(i: int) -> int:
                async with gate:
                    response = await client.post(f"{base}/task/", json={"name": f"task {i}"})
                    return response.status_code

            statuses = await asyncio.gather(*(create(i) for i in range(200)))
            listing = await client.get(f"{base}/task/", params={"page_size": 100})
    assert statuses == [201] * 200
    assert listing.json()["total"] == 200


async def test_oversized_body_is_413_and_nothing_is_stored(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    settings = Settings(**{**files_settings.__dict__, "max_body_size": 1024})
    async with serving(settings, redirect=False) as server:
        base = f"https://localhost:{server.api_port}"
        async with httpx.AsyncClient(verify=trust_context) as client:
            response = await client.post(f"{base}/task/", json={"name": "x" * 2000})
        async with httpx.AsyncClient(verify=trust_context) as client:
            listing = await client.get(f"{base}/task/")
    assert response.status_code == 413
    assert listing.json()["total"] == 0


async def test_restart_on_the_same_data_dir_keeps_the_data(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings, redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            created = (
                await client.post(
                    f"https://localhost:{server.api_port}/task/", json={"name": "keep me"}
                )
            ).json()
    async with serving(files_settings, redirect=False) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            again = await client.get(f"https://localhost:{server.api_port}/task/{created['id']}")
    assert again.json() == created


async def test_stop_lets_an_in_flight_request_finish(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    body = b'{"name": "in flight"}'
    head = (
        b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    async with serving(files_settings, redirect=False) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
        )
        writer.write(head + body[:5])
        await writer.drain()
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0.3)
        writer.write(body[5:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        await stopping
    assert status_line.startswith(b"HTTP/1.1 201")
    with sqlite3.connect(files_settings.database_path) as db:
        assert db.execute("SELECT name FROM task").fetchall() == [("in flight",)]
