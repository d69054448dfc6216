"""An mkcert-like CA and leaf: the certificate the tutorial's users put into nginx.

mkcert makes an RSA-3072 root and an RSA-2048 leaf (serverAuth, names in the SAN); the handshake
cost of the leaf's key type is what the benchmark compares, so it is reproduced here exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_KEY_BITS = 3072
LEAF_KEY_BITS = 2048
VALIDITY = timedelta(days=825)
"""mkcert's leaf lifetime (2 years 3 months), the most Apple platforms accept."""


@dataclass(frozen=True)
class CertFiles:
    """Where a CA root and the leaf it signed are written (PEM)."""

    root: Path
    chain: Path
    key: Path


def make_mkcert_like(directory: Path, names: tuple[str, ...]) -> CertFiles:
    """Write root.pem, leaf.pem (leaf only, as mkcert) and leaf-key.pem under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=ROOT_KEY_BITS)
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mkcert development CA")])
    root = (
        _builder(root_name, root_name, root_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_KEY_BITS)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "development cert")])
    leaf = (
        _builder(leaf_name, root_name, leaf_key.public_key(), now)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(name) for name in names]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    files = CertFiles(directory / "root.pem", directory / "leaf.pem", directory / "leaf-key.pem")
    files.root.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    files.chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ip_address(name))
    except ValueError:
        return x509.DNSName(name)
