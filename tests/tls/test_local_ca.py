from __future__ import annotations

import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from apiclub.errors import CertificateError
from apiclub.tls import CertifiedKey, FileStorage, LocalCA, create_server_context
from apiclub.tls.local_ca import ROOT_CERT_KEY, ROOT_KEY_KEY

from .tlsclient import client_context, handshake, serve_tls

NAMES = ["localhost", "127.0.0.1", "::1"]


def test_root_created_once_and_reused(storage: FileStorage) -> None:
    first = LocalCA.load_or_create(storage)
    second = LocalCA.load_or_create(storage)
    assert first.cert.serial_number == second.cert.serial_number
    assert second.root_cert_path == storage.root / "ca" / "root.pem"


def test_a_new_data_dir_gets_a_new_root(storage: FileStorage) -> None:
    other = FileStorage(storage.root.parent / "elsewhere")
    a, b = LocalCA.load_or_create(storage), LocalCA.load_or_create(other)
    assert a.cert.serial_number != b.cert.serial_number


def test_root_key_file_0600_and_ca_dir_0700(local_ca: LocalCA, storage: FileStorage) -> None:
    assert stat.S_IMODE(storage.path(ROOT_KEY_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(storage.path(ROOT_CERT_KEY).stat().st_mode) == 0o644
    assert stat.S_IMODE((storage.root / "ca").stat().st_mode) == 0o700


def test_root_is_a_constrained_ca(local_ca: LocalCA) -> None:
    cert = local_ca.cert
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    common_name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert str(common_name).startswith("apiclub local CA ")
    assert "@" in str(common_name)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3649) < life < timedelta(days=3652)


def test_leaf_is_short_lived_ecdsa_p256_with_non_critical_san(local_ca: LocalCA) -> None:
    leaf = local_ca.issue_cert(NAMES).leaf
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = local_ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert leaf.not_valid_after_utc - datetime.now(UTC) == pytest.approx(
        timedelta(days=7), abs=timedelta(seconds=30)
    )
    assert datetime.now(UTC) - leaf.not_valid_before_utc >= timedelta(seconds=59)


def test_each_leaf_has_a_fresh_key_and_serial(local_ca: LocalCA) -> None:
    a, b = local_ca.issue_cert(["localhost"]), local_ca.issue_cert(["localhost"])
    assert a.leaf.serial_number != b.leaf.serial_number
    assert a.key_pem != b.key_pem


def test_issue_without_names_is_refused(local_ca: LocalCA) -> None:
    with pytest.raises(CertificateError, match="without names"):
        local_ca.issue_cert([])


def test_certified_key_round_trips_and_detects_a_foreign_key(local_ca: LocalCA) -> None:
    a, b = local_ca.issue_cert(["localhost"]), local_ca.issue_cert(["localhost"])
    assert CertifiedKey.from_pem(a.chain_pem, a.key_pem).leaf == a.leaf
    with pytest.raises(ValueError, match="does not belong"):
        CertifiedKey.from_pem(a.chain_pem, b.key_pem)


def test_renewal_point_is_two_thirds_of_the_lifetime(local_ca: LocalCA) -> None:
    certified = local_ca.issue_cert(["localhost"], lifetime=timedelta(days=3))
    start = certified.not_before
    assert not certified.needs_renewal(start + certified.lifetime * 0.6)
    assert certified.needs_renewal(start + certified.lifetime * 0.7)
    assert certified.needs_renewal(start - timedelta(seconds=1))


def test_wildcard_covers_one_label_only(local_ca: LocalCA) -> None:
    certified = local_ca.issue_cert(["*.example.test", "127.0.0.1"])
    assert certified.covers("a.example.test")
    assert certified.covers("127.0.0.1")
    assert not certified.covers("example.test")
    assert not certified.covers("b.a.example.test")
    assert not certified.covers("::1")


@pytest.mark.anyio
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"])
async def test_leaf_verifies_against_root(local_ca: LocalCA, hostname: str) -> None:
    server = create_server_context(local_ca.issue_cert(NAMES))
    async with serve_tls(server) as port:
        peer = await handshake(port, client_context(local_ca.root_cert_path), hostname)
    assert peer.names == ("localhost",)


@pytest.mark.anyio
async def test_client_trusting_another_ca_fails(local_ca: LocalCA, other_ca: trustme.CA) -> None:
    client = ssl.create_default_context()
    other_ca.configure_trust(client)
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            await handshake(port, client, "localhost")


@pytest.mark.anyio
@pytest.mark.parametrize("hostname", ["example.com", "10.0.0.1"])
async def test_wrong_hostname_fails(local_ca: LocalCA, hostname: str) -> None:
    async with serve_tls(create_server_context(local_ca.issue_cert(NAMES))) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await handshake(port, client_context(local_ca.root_cert_path), hostname)


@pytest.mark.parametrize(
    ("key", "garbage"),
    [(ROOT_KEY_KEY, b"not a key"), (ROOT_CERT_KEY, b"-----BEGIN CERTIFICATE-----\nAAAA\n")],
)
def test_corrupt_root_files_raise_certificate_error(
    storage: FileStorage, key: str, garbage: bytes
) -> None:
    LocalCA.load_or_create(storage)
    storage.path(key).write_bytes(garbage)
    with pytest.raises(CertificateError, match=rf"{storage.path(key)}.*delete"):
        LocalCA.load_or_create(storage)


def test_root_key_of_another_ca_is_refused(storage: FileStorage) -> None:
    LocalCA.load_or_create(storage)
    other = FileStorage(storage.root.parent / "other")
    LocalCA.load_or_create(other)
    storage.path(ROOT_KEY_KEY).write_bytes(other.read(ROOT_KEY_KEY))
    with pytest.raises(CertificateError, match="does not belong"):
        LocalCA.load_or_create(storage)


def test_missing_half_of_the_root_is_not_silently_replaced(storage: FileStorage) -> None:
    LocalCA.load_or_create(storage)
    storage.path(ROOT_KEY_KEY).unlink()
    with pytest.raises(CertificateError, match=r"root-key\.pem is missing"):
        LocalCA.load_or_create(storage)


def test_unreadable_root_raises_certificate_error(storage: FileStorage) -> None:
    LocalCA.load_or_create(storage)
    path = storage.path(ROOT_KEY_KEY)
    path.unlink()
    path.mkdir()  # unreadable even as root, unlike chmod 000
    with pytest.raises(CertificateError, match=r"root-key\.pem cannot be read.*permissions"):
        LocalCA.load_or_create(storage)
