"""The HTTPS listener over real TLS: verification, ALPN, Host checks, hostile bytes, swaps."""

from __future__ import annotations

import asyncio
import socket
import ssl

import httpx
import pytest
import trustme

from apiclub.settings import Settings
from tests.server.conftest import local_ca_context, serving

pytestmark = pytest.mark.anyio


async def test_files_mode_serves_the_api_verified_by_the_given_ca(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            response = await client.get(f"https://localhost:{server.api_port}/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "server" not in response.headers


async def test_a_client_trusting_another_ca_fails(files_settings: Settings) -> None:
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    async with serving(files_settings) as server, httpx.AsyncClient(verify=other) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://localhost:{server.api_port}/")


async def test_local_mode_is_verified_by_the_projects_root(local_settings: Settings) -> None:
    async with serving(local_settings) as server:
        context = local_ca_context(server)
        async with httpx.AsyncClient(verify=context) as client:
            by_name = await client.get(f"https://localhost:{server.api_port}/db-check")
            by_ip = await client.get(f"https://127.0.0.1:{server.api_port}/")
    assert by_name.json() == {"results": [1]}
    assert by_ip.json() == {"status": "ok"}


async def test_local_root_does_not_verify_a_name_not_configured(local_settings: Settings) -> None:
    async with serving(local_settings) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await asyncio.open_connection(
                "127.0.0.1",
                server.api_port,
                ssl=local_ca_context(server),
                server_hostname="other.example",
            )


async def test_http2_is_negotiated_and_authority_passes_the_host_check(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings) as server:
        async with httpx.AsyncClient(verify=trust_context, http2=True) as client:
            response = await client.get(f"https://localhost:{server.api_port}/")
            refused = await client.get(
                f"https://localhost:{server.api_port}/", headers={"host": "evil.example"}
            )
    assert response.http_version == "HTTP/2"
    assert response.json() == {"status": "ok"}
    assert refused.status_code == 421


async def test_unknown_host_gets_421_over_tls(
    files_settings: Settings, trust_context: ssl.SSLContext
) -> None:
    async with serving(files_settings) as server:
        async with httpx.AsyncClient(verify=trust_context) as client:
            response = await client.get(
                f"https://127.0.0.1:{server.api_port}/", headers={"host": "evil.example"}
            )
    assert response.status_code == 421
    assert response.json()["detail"] == "this server does not serve host 'evil.example'"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_1_1_is_refused(files_settings: Settings, trust_context: ssl.SSLContext) -> None:
    trust_context.minimum_version = ssl.TLSVersion.TLSv1
    trust_context.maximum_version = ssl.TLSVersion.TLSv1_1
    trust_context.set_ciphers("DEFAULT:@SECLEVEL=0")
    async with serving(files_settings) as server:
        # The server aborts the handshake; depending on timing the client sees an alert or a reset.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection(
                "127.0.0.1", server.api_port, ssl=trust_context, server_hostname="localhost"
            )


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        bytes(range(256)) * 8,
        b"\x16\x03\x01\x00\x05hello",
    ],
    ids=["plain-http", "random-bytes", "truncated-hello"],
)
async def test_garbage_on_the_tls_port_is_closed_and_the_server_survives(
    files_settings: Settings, trust_context: ssl.SSLContext, payload: bytes
) -> None:
    async with serving(files_settings) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.api_port)
        writer.write(payload)
        await writer.drain()
        if payload.startswith(b"\x16"):
            writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert b"200 OK" not in answer
        async with httpx.AsyncClient(verify=trust_context) as client:
            response = await client.get(f"https://localhost:{server.api_port}/")
    assert response.status_code == 200


def peer_serial(context: ssl.SSLContext, port: int) -> tuple[ssl.SSLSocket, int]:
    from cryptography import x509

    raw = socket.create_connection(("127.0.0.1", port))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return tls, x509.load_der_x509_certificate(der).serial_number


def http_get(tls: ssl.SSLSocket, path: str = "/") -> bytes:
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = tls.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


async def test_renewed_certificate_is_served_to_new_connections_without_dropping_old_ones(
    local_settings: Settings,
) -> None:
    async with serving(local_settings) as server:
        assert server.cert_manager is not None
        context = local_ca_context(server)
        old, old_serial = await asyncio.to_thread(peer_serial, context, server.api_port)
        try:
            assert (await asyncio.to_thread(http_get, old)).startswith(b"HTTP/1.1 200")
            assert server.cert_manager.renew(force=True) is True
            new, new_serial = await asyncio.to_thread(peer_serial, context, server.api_port)
            new.close()
            assert new_serial != old_serial
            assert new_serial == server.cert_manager.current_certificate().serial_number
            again = await asyncio.to_thread(http_get, old)
            assert again.startswith(b"HTTP/1.1 200"), again
        finally:
            old.close()
