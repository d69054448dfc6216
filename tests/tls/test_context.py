from __future__ import annotations

import ssl
import warnings

import pytest

from apiclub.tls import CertMap, LocalCA, create_server_context

from .tlsclient import client_context, handshake, serve_tls

NAMES = ["localhost", "127.0.0.1", "::1"]


def test_server_context_settings() -> None:
    context = create_server_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 and all(
        ("ECDHE" in n or "DHE" in n) and ("GCM" in n or "CHACHA" in n) for n in tls12
    )


@pytest.mark.anyio
async def test_alpn_negotiates_h2_over_tls13(local_ca: LocalCA) -> None:
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        peer = await handshake(port, client_context(local_ca.root_cert_path), "localhost")
    assert peer.alpn == "h2"
    assert peer.version == "TLSv1.3"


@pytest.mark.anyio
async def test_http11_only_client_gets_http11(local_ca: LocalCA) -> None:
    client = client_context(local_ca.root_cert_path)
    client.set_alpn_protocols(["http/1.1"])
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        assert (await handshake(port, client, "localhost")).alpn == "http/1.1"


def _legacy_client(local_ca: LocalCA, version: ssl.TLSVersion) -> ssl.SSLContext:
    client = client_context(local_ca.root_cert_path)
    # Lower the client's own security level so that it really offers the old version and
    # the refusal we see is the server's.
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 (pytest turns that into an error); that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        client.minimum_version = ssl.TLSVersion.TLSv1
        client.maximum_version = version
    return client


@pytest.mark.anyio
async def test_tls11_client_is_refused(local_ca: LocalCA) -> None:
    client = _legacy_client(local_ca, ssl.TLSVersion.TLSv1_1)
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        # The server's alert, or (asyncio aborts the server side at once) a reset.
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await handshake(port, client, "localhost")


@pytest.mark.anyio
async def test_tls12_client_is_accepted(local_ca: LocalCA) -> None:
    client = _legacy_client(local_ca, ssl.TLSVersion.TLSv1_2)
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        peer = await handshake(port, client, "localhost")
    assert peer.version == "TLSv1.2"
    assert peer.alpn == "h2"


@pytest.fixture
def two_cert_map(local_ca: LocalCA) -> tuple[CertMap, int, int]:
    a = local_ca.issue_cert(["a.test", "127.0.0.1"])
    b = local_ca.issue_cert(["b.test", "*.wild.test"])
    return CertMap(a, [b]), a.leaf.serial_number, b.leaf.serial_number


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("hostname", "expected"),
    [("a.test", 0), ("b.test", 1), ("x.wild.test", 1), ("127.0.0.1", 0)],
)
async def test_sni_picks_the_certificate_by_name(
    local_ca: LocalCA, two_cert_map: tuple[CertMap, int, int], hostname: str, expected: int
) -> None:
    cert_map, *serials = two_cert_map
    async with serve_tls(cert_map.server_context()) as port:
        peer = await handshake(port, client_context(local_ca.root_cert_path), hostname)
    assert peer.serial == serials[expected]


@pytest.mark.anyio
@pytest.mark.parametrize("hostname", ["c.test", "wild.test", "y.x.wild.test"])
async def test_unknown_name_gets_the_default_and_fails_verification(
    local_ca: LocalCA, two_cert_map: tuple[CertMap, int, int], hostname: str
) -> None:
    cert_map, _, _ = two_cert_map
    assert cert_map.context_for(hostname) is cert_map.context_for(None)
    async with serve_tls(cert_map.server_context()) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await handshake(port, client_context(local_ca.root_cert_path), hostname)


@pytest.mark.anyio
async def test_replace_takes_effect_on_next_handshake_without_sni(local_ca: LocalCA) -> None:
    old, new = local_ca.issue_cert(NAMES), local_ca.issue_cert(NAMES)
    cert_map = CertMap(old)
    client = client_context(local_ca.root_cert_path)
    async with serve_tls(cert_map.server_context()) as port:
        assert (await handshake(port, client, "127.0.0.1")).serial == old.leaf.serial_number
        cert_map.replace(new)
        assert (await handshake(port, client, "127.0.0.1")).serial == new.leaf.serial_number
        assert (await handshake(port, client, "localhost")).serial == new.leaf.serial_number
