"""Debian's nginx, started by the shipped entrypoint, in front of the real API on loopback.

The API runs in-process with TLS off and nginx trusted, as compose runs it behind nginx;
nginx serves the certificates the API's own CertManager wrote into the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from apiclub.settings import AuthMode
from apiclub.tls import CertManager, FileStorage
from apiclub.tls.challenges import ChallengeStore
from apiclub.tokens import TokenStore
from tests.deploy.conftest import behind_nginx, echo_app, serving_app
from tests.deploy.helpers import (
    DOMAINS,
    Nginx,
    established_to,
    free_port,
    need_nginx,
    running_nginx,
)
from tests.server.conftest import serving

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("nginx_installed")]

RELOAD_TIMEOUT = 15.0


@pytest.fixture
def nginx_installed() -> None:
    need_nginx()


def via(nginx: Nginx, name: str, path: str = "/", *, tls: bool = True) -> tuple[str, dict]:
    """A URL on nginx's loopback port, and the request extensions that make it `name`'s."""
    if tls:
        return f"https://127.0.0.1:{nginx.https_port}{path}", {"sni_hostname": name}
    return f"http://127.0.0.1:{nginx.http_port}{path}", {}


def served_certificate(nginx: Nginx, name: str, context: ssl.SSLContext) -> x509.Certificate:
    with (
        socket.create_connection(("127.0.0.1", nginx.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.fixture
def nginx_down_upstream(certs: CertManager) -> Iterator[Nginx]:
    """nginx whose upstream port has nobody listening."""
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        yield nginx


async def test_both_domains_are_routed_by_sni_and_host_over_h1_and_h2(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    async with serving(behind_nginx(tmp_path), redirect=False) as api:
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            for http2 in (False, True):
                async with httpx.AsyncClient(verify=client_context, http2=http2) as client:
                    for name in DOMAINS:
                        url, ext = via(nginx, name, "/task/")
                        created = await client.post(
                            url, json={"name": name}, headers={"host": name}, extensions=ext
                        )
                        listed = await client.get(url, headers={"host": name}, extensions=ext)
                        assert created.status_code == 201, created.text
                        assert listed.status_code == 200
                        assert listed.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                        assert name in [task["name"] for task in listed.json()["tasks"]]


async def test_public_names_ask_a_token_that_nginx_passes_through(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    settings = behind_nginx(tmp_path, AuthMode.AUTO)
    token = TokenStore(settings.data_dir).add("ci")
    async with serving(settings, redirect=False) as api:
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            for http2 in (False, True):
                async with httpx.AsyncClient(verify=client_context, http2=http2) as client:
                    url, ext = via(nginx, DOMAINS[0], "/task/")
                    headers = {"host": DOMAINS[0]}
                    refused = await client.post(
                        url, json={"name": "x"}, headers=headers, extensions=ext
                    )
                    created = await client.post(
                        url,
                        json={"name": "x"},
                        headers={**headers, "authorization": f"Bearer {token}"},
                        extensions=ext,
                    )
                assert refused.status_code == 401, refused.text
                assert refused.headers["www-authenticate"] == 'Bearer realm="apiclub"'
                assert created.status_code == 201, created.text


async def test_unknown_names_get_no_certificate(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    # No API needed: the handshake is refused before any request exists.
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        for name in ("evil.example", None):
            context = client_context if name else _unverified()
            # nginx answers with the unrecognized_name alert (RFC 6066 3) and closes; the
            # client sees the alert, or a reset when the close overtakes it.
            with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", nginx.https_port, ssl=context, server_hostname=name or ""
                )
                writer.close()
            if isinstance(refused.value, ssl.SSLError):
                assert "UNRECOGNIZED_NAME" in str(refused.value).upper().replace(" ", "_")
        # The twin: a name of ours completes the handshake with a certificate for it.
        certificate = served_certificate(nginx, "api.apiclub.com", client_context)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert set(DOMAINS) <= set(names.value.get_values_for_type(x509.DNSName))


async def test_another_host_behind_one_of_our_names_gets_421_json(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        url, ext = via(nginx, "apiclub.com")
        async with httpx.AsyncClient(verify=client_context) as client:
            response = await client.get(url, headers={"host": "evil.example"}, extensions=ext)
    assert response.status_code == 421
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status_code"] == 421


async def test_port_80_redirects_each_domain_to_https(certs: CertManager) -> None:
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        url = via(nginx, "", "/task/?page=2", tls=False)[0]
        async with httpx.AsyncClient() as client:
            for name in DOMAINS:
                get = await client.get(url, headers={"host": name})
                post = await client.post(url, headers={"host": name}, json={"name": "x"})
                assert (get.status_code, get.headers["location"]) == (
                    301,
                    f"https://{name}/task/?page=2",
                )
                assert (post.status_code, post.headers["location"]) == (
                    308,
                    f"https://{name}/task/?page=2",
                )


async def test_port_80_names_the_public_https_port_when_not_443(certs: CertManager) -> None:
    with running_nginx(
        certs.settings.data_dir, free_port(), APICLUB_PUBLIC_HTTPS_PORT="8443"
    ) as nginx:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                via(nginx, "", "/a", tls=False)[0], headers={"host": "apiclub.com"}
            )
    assert response.headers["location"] == "https://apiclub.com:8443/a"


async def test_port_80_closes_the_connection_for_unknown_hosts(certs: CertManager) -> None:
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        for request in (
            b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",  # no Host at all
            b"GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", nginx.http_port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            await writer.wait_closed()
            assert answer == b"", (request, answer)  # 444: closed without a word


async def test_acme_challenges_on_port_80_reach_the_api(
    tmp_path: Path, certs: CertManager, caplog: pytest.LogCaptureFixture
) -> None:
    path = "/.well-known/acme-challenge/some-token"
    with caplog.at_level(logging.INFO, logger="apiclub.access"):
        async with serving(behind_nginx(tmp_path), redirect=False) as api:
            with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
                async with httpx.AsyncClient() as client:
                    response = await client.get(
                        via(nginx, "", path, tls=False)[0], headers={"host": "api.apiclub.com"}
                    )
    # Not redirected, and answered by the API (a JSON body nginx never writes for a 404).
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    access = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
    assert any(path in line for line in access), access


async def test_a_token_through_nginx_gets_the_one_responders_answer(
    tmp_path: Path, certs: CertManager
) -> None:
    # The nginx mode of issue 13: nginx's port 80 forwards the path to the API, whose
    # ChallengeMiddleware answers as the port-80 listener and the CLI do.
    settings = dataclasses.replace(behind_nginx(tmp_path), manage_certs=True)
    token, thumb = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "9" * 43
    async with serving(settings, redirect=False) as api:
        ChallengeStore(FileStorage(settings.data_dir)).add(token, f"{token}.{thumb}", DOMAINS[1])
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            url = via(nginx, "", f"/.well-known/acme-challenge/{token}", tls=False)[0]
            async with httpx.AsyncClient() as client:
                right = await client.get(url, headers={"host": DOMAINS[1]})
                other_name = await client.get(url, headers={"host": DOMAINS[0]})
                post = await client.post(url, headers={"host": DOMAINS[1]})
    assert (right.status_code, right.text) == (200, f"{token}.{thumb}")
    assert right.headers["cache-control"] == "no-store"
    assert (other_name.status_code, other_name.text) == (404, "unknown ACME challenge token\n")
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


async def test_forwarded_client_and_scheme_reach_the_api_from_nginx_only(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    # Needs the API's proxy-header middleware. The client connects from 127.0.0.2 and forges
    # its own X-Forwarded-For: the API must see 127.0.0.2, the address nginx saw.
    forged = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "http"}
    async with serving_app(behind_nginx(tmp_path), echo_app) as api:
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            transport = httpx.AsyncHTTPTransport(verify=client_context, local_address="127.0.0.2")
            async with httpx.AsyncClient(transport=transport) as client:
                url, ext = via(nginx, "apiclub.com", "/seen")
                tls = await client.get(
                    url, headers={"host": "apiclub.com", **forged}, extensions=ext
                )
                plain = await client.get(
                    via(nginx, "", "/.well-known/acme-challenge/t", tls=False)[0],
                    headers={"host": "apiclub.com"},
                )
        # The twin: the same forged headers sent to the API directly, from an untrusted peer.
        direct_transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=direct_transport) as client:
            direct = await client.get(
                f"http://127.0.0.1:{api.api_port}/seen", headers={"host": "apiclub.com", **forged}
            )
    seen = tls.json()
    assert (seen["client"], seen["scheme"]) == ("127.0.0.2", "https")
    assert seen["headers"]["x-real-ip"] == "127.0.0.2"
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.2"
    assert seen["headers"]["host"] == "apiclub.com"
    assert (plain.json()["client"], plain.json()["scheme"]) == ("127.0.0.2", "http")
    assert (direct.json()["client"], direct.json()["scheme"]) == ("127.0.0.2", "http")


async def test_access_log_of_the_api_names_the_client_not_nginx(
    tmp_path: Path,
    certs: CertManager,
    client_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Needs the API's proxy-header middleware (client address in the access log).
    with caplog.at_level(logging.INFO, logger="apiclub.access"):
        async with serving(behind_nginx(tmp_path), redirect=False) as api:
            with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
                transport = httpx.AsyncHTTPTransport(
                    verify=client_context, local_address="127.0.0.2"
                )
                async with httpx.AsyncClient(transport=transport) as client:
                    url, ext = via(nginx, "api.apiclub.com", "/db-check")
                    response = await client.get(
                        url, headers={"host": "api.apiclub.com"}, extensions=ext
                    )
    assert response.json() == {"results": [1]}
    access = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
    assert len(access) == 1
    assert access[0].startswith("127.0.0.2:"), access


async def test_nginx_refuses_a_body_over_the_api_limit_with_json(
    tmp_path: Path,
    certs: CertManager,
    client_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = behind_nginx(tmp_path).max_body_size
    with caplog.at_level(logging.INFO, logger="apiclub.access"):
        async with serving(behind_nginx(tmp_path), redirect=False) as api:
            with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
                url, ext = via(nginx, "apiclub.com", "/task/")
                headers = {"host": "apiclub.com", "content-type": "application/json"}
                async with httpx.AsyncClient(verify=client_context) as client:
                    too_big = await client.post(
                        url, content=b" " * (limit + 1), headers=headers, extensions=ext
                    )
                async with httpx.AsyncClient(verify=client_context) as client:
                    # The twin: at the limit, nginx passes it on and the API answers.
                    body = b'{"name": "big"}'
                    at_limit = await client.post(
                        url,
                        content=body + b" " * (limit - len(body)),
                        headers=headers,
                        extensions=ext,
                    )
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "application/json"
    assert too_big.json() == {
        "status_code": 413,
        "detail": f"request body too large: at most {limit} bytes",
    }
    assert at_limit.status_code == 201, at_limit.text
    access = [r.getMessage() for r in caplog.records if r.name == "apiclub.access"]
    assert len(access) == 1  # only the request at the limit reached the API


async def test_502_is_json_when_the_api_is_down(
    nginx_down_upstream: Nginx, client_context: ssl.SSLContext
) -> None:
    url, ext = via(nginx_down_upstream, "apiclub.com", "/task/")
    async with httpx.AsyncClient(verify=client_context) as client:
        response = await client.get(url, headers={"host": "apiclub.com"}, extensions=ext)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status_code"] == 502


async def test_upstream_connections_are_kept_alive(
    tmp_path: Path, certs: CertManager, client_context: ssl.SSLContext
) -> None:
    async with serving(behind_nginx(tmp_path), redirect=False) as api:
        with running_nginx(certs.settings.data_dir, api.api_port) as nginx:
            url, ext = via(nginx, "apiclub.com", "/")
            for _ in range(10):
                # A new client connection each time: only nginx's upstream pool can reuse.
                async with httpx.AsyncClient(verify=client_context) as client:
                    response = await client.get(
                        url, headers={"host": "apiclub.com"}, extensions=ext
                    )
                assert response.json() == {"status": "ok"}
            # Sequential requests reuse one idle upstream connection (worker_processes auto
            # may give each worker one), instead of ten closed ones.
            assert 1 <= established_to(api.api_port) <= 2


async def test_a_renewed_certificate_is_served_without_restart(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        old = served_certificate(nginx, "apiclub.com", client_context)
        assert old.serial_number == certs.current_certificate().serial_number
        # A connection open across the reload keeps working (old workers drain gracefully).
        async with httpx.AsyncClient(verify=client_context) as client:
            url, ext = via(nginx, "apiclub.com", "/")
            before = await client.get(url, headers={"host": "apiclub.com"}, extensions=ext)
            assert certs.renew(force=True)
            new = certs.current_certificate()
            served = await _wait_for_serial(nginx, new.serial_number, client_context)
            after = await client.get(url, headers={"host": "apiclub.com"}, extensions=ext)
        log = nginx.log()
    assert served == new.serial_number != old.serial_number
    assert before.status_code == after.status_code == 502  # no API: nginx itself answered
    assert "certificate files changed: reloading nginx" in log


async def test_a_broken_certificate_file_keeps_the_old_one_in_service(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    with running_nginx(certs.settings.data_dir, free_port()) as nginx:
        old = served_certificate(nginx, "apiclub.com", client_context).serial_number
        chain = certs.settings.data_dir / "certs/local/fullchain.pem"
        chain.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while "nginx -t fails" not in nginx.log() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert "nginx -t fails; still serving the old ones" in nginx.log()
        assert served_certificate(nginx, "apiclub.com", client_context).serial_number == old


async def _wait_for_serial(nginx: Nginx, serial: int, context: ssl.SSLContext) -> int:
    deadline = time.monotonic() + RELOAD_TIMEOUT
    current = served_certificate(nginx, "apiclub.com", context).serial_number
    while current != serial and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        current = served_certificate(nginx, "apiclub.com", context).serial_number
    return current


def _unverified() -> ssl.SSLContext:
    """A client that sends no SNI (server_hostname ""), so it cannot check a name either."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_504_is_json_when_the_api_does_not_answer_in_time(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    # A listener that never accepts, its one-slot backlog already taken: the kernel drops
    # nginx's SYNs, its connect times out (proxy_connect_timeout 5 s) and nginx answers 504.
    with socket.socket() as silent, socket.socket() as filler:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        filler.connect(silent.getsockname())
        with running_nginx(certs.settings.data_dir, silent.getsockname()[1]) as nginx:
            url, ext = via(nginx, "apiclub.com", "/task/")
            async with httpx.AsyncClient(verify=client_context, timeout=30) as client:
                response = await client.get(url, headers={"host": "apiclub.com"}, extensions=ext)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status_code": 504,
        "detail": "the API did not answer in time",
    }


async def test_hsts_reaches_the_browser_over_https_and_never_over_port_80(
    certs: CertManager, client_context: ssl.SSLContext
) -> None:
    overrides = {"APICLUB_ACME_AGREE_TOS": "1"}
    with running_nginx(certs.settings.data_dir, free_port(), **overrides) as nginx:
        async with httpx.AsyncClient(verify=client_context) as client:
            url, ext = via(nginx, "apiclub.com")
            # The upstream is down: nginx's own 502 carries the header too (`always`).
            https = await client.get(url, headers={"host": "apiclub.com"}, extensions=ext)
            plain_url, _ = via(nginx, "apiclub.com", tls=False)
            plain = await client.get(plain_url, headers={"host": "apiclub.com"})
    assert https.status_code == 502
    assert https.headers["strict-transport-security"] == "max-age=31536000"
    assert plain.status_code == 301
    assert "strict-transport-security" not in plain.headers
