"""The three HTTP-01 answerers answer alike, on real sockets: the server's port-80 listener,
the API's plain listener behind a proxy (what nginx forwards the path to), and the CLI's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings, TlsMode
from apiclub.tls import FileStorage
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.http01 import serve_challenges

from .conftest import serving

pytestmark = pytest.mark.anyio

TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
THUMB = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
KEY_AUTHORIZATION = f"{TOKEN}.{THUMB}"
NAME = "api.example.com"
PATH = f"/.well-known/acme-challenge/{TOKEN}"

Answer = tuple[int, dict[str, str], bytes]


def publish(data_dir: Path) -> None:
    ChallengeStore(FileStorage(data_dir)).add(TOKEN, KEY_AUTHORIZATION, NAME)


@contextlib.asynccontextmanager
async def port_80(tmp_path: Path) -> AsyncIterator[int]:
    settings = Settings(data_dir=tmp_path / "port80", tls=TlsMode.INTERNAL, domains=(NAME,))
    async with serving(settings) as server:
        publish(settings.data_dir)
        yield server.redirect_port


@contextlib.asynccontextmanager
async def behind_proxy(tmp_path: Path) -> AsyncIterator[int]:
    settings = Settings(
        data_dir=tmp_path / "proxied", tls=TlsMode.OFF, domains=(NAME,), manage_certs=True
    )
    async with serving(settings, redirect=False) as server:
        publish(settings.data_dir)
        yield server.api_port


@contextlib.asynccontextmanager
async def cli_answerer(tmp_path: Path) -> AsyncIterator[int]:
    data_dir = tmp_path / "cli"
    publish(data_dir)
    sock = bind_socket("127.0.0.1", 0, option="test")
    with serve_challenges(sock, ChallengeStore(FileStorage(data_dir))):
        yield sock.getsockname()[1]


LISTENERS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[int]]] = {
    "port-80 listener": port_80,
    "behind nginx": behind_proxy,
    "cli answerer": cli_answerer,
}


async def ask(port: int, method: str, host: str, path: str = PATH) -> Answer:
    async with httpx.AsyncClient() as client:
        response = await client.request(
            method, f"http://127.0.0.1:{port}{path}", headers={"host": host}
        )
    wanted = ("content-type", "cache-control", "allow", "content-length")
    headers = {name: response.headers[name] for name in wanted if name in response.headers}
    return response.status_code, headers, response.content


REQUESTS = {
    "get": ("GET", NAME),
    "get, Host in capitals with a port": ("GET", "API.Example.COM:80"),
    "head": ("HEAD", NAME),
    "wrong host": ("GET", "other.example.com"),
    "post": ("POST", NAME),
    "delete": ("DELETE", NAME),
}
PLAIN = {"content-type": "text/plain", "cache-control": "no-store"}
ANSWERED = (
    200,
    {**PLAIN, "content-length": str(len(KEY_AUTHORIZATION))},
    KEY_AUTHORIZATION.encode(),
)
NOT_FOUND = (404, {**PLAIN, "content-length": "29"}, b"unknown ACME challenge token\n")
REFUSED = (
    405,
    {**PLAIN, "allow": "GET, HEAD", "content-length": "41"},
    b"ACME challenges answer GET and HEAD only\n",
)
EXPECTED = {
    "get": ANSWERED,
    "get, Host in capitals with a port": ANSWERED,
    "head": (200, ANSWERED[1], b""),
    "wrong host": NOT_FOUND,
    "post": REFUSED,
    "delete": REFUSED,
}


@pytest.mark.parametrize("listener", LISTENERS)
async def test_every_answerer_gives_the_same_answers(tmp_path: Path, listener: str) -> None:
    async with LISTENERS[listener](tmp_path) as port:
        answers = {case: await ask(port, *request) for case, request in REQUESTS.items()}
        unknown = await ask(port, "GET", NAME, "/.well-known/acme-challenge/" + "x" * 43)
        too_long = await ask(port, "GET", NAME, "/.well-known/acme-challenge/" + "x" * 300)
    assert answers == EXPECTED
    assert unknown == too_long == NOT_FOUND


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_withdrawn_token_is_404_on_every_answerer(tmp_path: Path, listener: str) -> None:
    async with LISTENERS[listener](tmp_path) as port:
        before = await ask(port, "GET", NAME)
        for data_dir in tmp_path.iterdir():
            ChallengeStore(FileStorage(data_dir)).remove(TOKEN)
        after = await ask(port, "GET", NAME)
    assert (before, after) == (ANSWERED, NOT_FOUND)
