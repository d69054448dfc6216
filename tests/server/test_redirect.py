from __future__ import annotations

import json

import pytest

from apiclub.server.redirect import RedirectApp
from tests.server.asgi_helpers import call, http_scope

pytestmark = pytest.mark.anyio

HOSTS = ("localhost", "api.example.com", "127.0.0.1", "::1")


def redirect(status: int, location: bytes) -> list[dict[str, object]]:
    extra = (b"cache-control", b"no-store") if status == 308 else (b"vary", b"host")
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"location", location), extra, (b"content-length", b"0")],
        },
        {"type": "http.response.body", "body": b""},
    ]


async def test_get_is_301_to_same_host_path_and_query() -> None:
    app = RedirectApp(HOSTS, https_port=8443)
    sent = await call(app, http_scope(path="/task/", query=b"page=2&name=a%20b"))
    assert sent == redirect(301, b"https://localhost:8443/task/?page=2&name=a%20b")


async def test_head_is_301() -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(method="HEAD", path="/x"))
    assert sent == redirect(301, b"https://localhost:8443/x")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_308_so_the_body_is_resent(method: str) -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(method=method, path="/task/"))
    assert sent == redirect(308, b"https://localhost:8443/task/")


async def test_port_443_is_left_out_and_host_port_is_replaced() -> None:
    app = RedirectApp(HOSTS, https_port=443)
    sent = await call(app, http_scope(host="API.Example.com.:80", path="/"))
    assert sent == redirect(301, b"https://api.example.com/")


async def test_ipv6_host_is_bracketed() -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(host="[::1]:8080", path="/a"))
    assert sent == redirect(301, b"https://[::1]:8443/a")


async def test_unknown_host_gets_421_and_no_location() -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(host="evil.example.net"))
    assert sent[0]["status"] == 421
    assert all(name != b"location" for name, _ in sent[0]["headers"])
    assert json.loads(sent[1]["body"])["detail"] == (
        "this server does not serve host 'evil.example.net'"
    )


async def test_missing_host_gets_421() -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(host=None))
    assert sent[0]["status"] == 421


async def test_absolute_form_target_cannot_choose_the_location_host() -> None:
    scope = http_scope(
        path="http://evil.example.net/steal", raw_path=b"http://evil.example.net/steal"
    )
    sent = await call(RedirectApp(HOSTS, 8443), scope)
    assert sent == redirect(301, b"https://localhost:8443/steal")


async def test_double_slash_path_stays_a_path_on_our_host() -> None:
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(path="//evil.example.net/x"))
    assert sent == redirect(301, b"https://localhost:8443//evil.example.net/x")


async def test_non_ascii_bytes_are_percent_encoded() -> None:
    scope = http_scope(path="/caf\u00e9", raw_path="/café".encode(), query=b"q=\xff")
    sent = await call(RedirectApp(HOSTS, 8443), scope)
    assert sent == redirect(301, b"https://localhost:8443/caf%C3%A9?q=%FF")


async def test_answers_lifespan() -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await RedirectApp(HOSTS, 8443)({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


class Tokens:
    """A `ChallengeLookup` with one token in flight."""

    def lookup(self, token: str, host: str | None) -> str | None:
        return f"{TOKEN}.thumbprint" if token == TOKEN else None


TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def challenge(status: int, body: bytes) -> list[dict[str, object]]:
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"cache-control", b"no-store"),
                (b"content-length", str(len(body)).encode()),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


@pytest.mark.parametrize("host", ["api.example.com", "not-ours.example.net", None])
async def test_known_token_answers_its_key_authorization_for_any_host(host: str | None) -> None:
    app = RedirectApp(HOSTS, 8443, Tokens())
    sent = await call(app, http_scope(host=host, path=f"/.well-known/acme-challenge/{TOKEN}"))
    assert sent == challenge(200, f"{TOKEN}.thumbprint".encode())


@pytest.mark.parametrize(
    "token", ["unknownTokenxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", f"{TOKEN}/x", "", "../../etc/passwd"]
)
async def test_unknown_token_is_404(token: str) -> None:
    app = RedirectApp(HOSTS, 8443, Tokens())
    sent = await call(app, http_scope(path=f"/.well-known/acme-challenge/{token}"))
    assert sent == challenge(404, b"unknown ACME challenge token\n")


async def test_head_of_a_token_has_no_body() -> None:
    app = RedirectApp(HOSTS, 8443, Tokens())
    scope = http_scope(method="HEAD", path=f"/.well-known/acme-challenge/{TOKEN}")
    sent = await call(app, scope)
    assert sent[0]["status"] == 200
    assert sent[1] == {"type": "http.response.body", "body": b""}


@pytest.mark.parametrize("path", ["/.well-known/acme-challengeX", "/.well-known/", "/task/"])
async def test_other_paths_still_redirect_with_a_challenge_store(path: str) -> None:
    sent = await call(RedirectApp(HOSTS, 8443, Tokens()), http_scope(path=path))
    assert sent == redirect(301, f"https://localhost:8443{path}".encode())


async def test_without_a_challenge_store_the_challenge_path_redirects_too() -> None:
    path = f"/.well-known/acme-challenge/{TOKEN}"
    sent = await call(RedirectApp(HOSTS, 8443), http_scope(path=path))
    assert sent == redirect(301, f"https://localhost:8443{path}".encode())
