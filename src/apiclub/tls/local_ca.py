"""A private certificate authority on this machine, like mkcert or Caddy's `local` issuer.

The root lives in the data directory and is created on first use; clients that trust it
(`apiclub ca trust`, or `ssl.create_default_context(cafile=...)`) accept every leaf it signs.
Leaves are short-lived (days, not years) and renewed automatically, so no revocation is needed.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apiclub.errors import CertificateError, StorageError
from apiclub.tls import keys
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.pem import private_key_pem, public_keys_match
from apiclub.tls.storage import Storage
from apiclub.units import DAY, MINUTE, YEAR

ROOT_CERT_KEY = keys.ROOT_CERT  # the names the tests and callers have always used
ROOT_KEY_KEY = keys.ROOT_KEY
ROOT_LIFETIME = 10 * YEAR
LEAF_LIFETIME = 7 * DAY
# Tolerate clients whose clock is slightly behind ours.
BACKDATE = 1 * MINUTE
# RFC 5280 4.1.2.6 / ub-common-name: a CN holds at most 64 characters.
MAX_COMMON_NAME = 64


class LocalCA:
    """The local root and the leaves it signs. Get one with `LocalCA.load_or_create`."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, root: Path):
        self.cert = cert
        self._key = key
        self._root_path = root

    @classmethod
    def load_or_create(cls, storage: Storage) -> LocalCA:
        """Load the root from `storage`, creating it (under the `ca` lock) on first use.

        Raises:
            CertificateError: a stored root or key is corrupt, unreadable or mismatched.
            StorageError: a new root cannot be written.
        """
        with storage.lock(keys.CA_LOCK):
            if not storage.exists(ROOT_CERT_KEY) and not storage.exists(ROOT_KEY_KEY):
                cert, key = _create_root()
                storage.write(ROOT_KEY_KEY, private_key_pem(key), private=True)
                storage.write(ROOT_CERT_KEY, cert.public_bytes(serialization.Encoding.PEM))
                return cls(cert, key, storage.path(ROOT_CERT_KEY))
            return cls(*_load_root(storage), storage.path(ROOT_CERT_KEY))

    @property
    def root_cert_path(self) -> Path:
        """The root certificate's file: what clients and trust stores need."""
        return self._root_path

    @property
    def root_pem(self) -> bytes:
        """The root certificate in PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_cert(self, names: Sequence[str], lifetime: timedelta = LEAF_LIFETIME) -> CertifiedKey:
        """Sign a new leaf for DNS names and IP addresses, with a fresh ECDSA P-256 key.

        The chain holds the leaf alone: clients trust the root itself (RFC 8446 4.4.2 lets
        a server omit it).
        """
        if not names:
            raise CertificateError("cannot issue a certificate without names")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        sans = san_entries(names)
        common = next((n for n in names if len(n) <= MAX_COMMON_NAME), "apiclub")
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "apiclub local certificate"),
                        x509.NameAttribute(NameOID.COMMON_NAME, common),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime)
            # The subject is not empty, so the SAN need not be critical (RFC 5280 4.2.1.6);
            # sslyze rejects chains whose SAN is critical.
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        return CertifiedKey(chain_pem=pem, key_pem=private_key_pem(key), leaf=cert)

    def signed(self, certified: CertifiedKey) -> bool:
        """Tell whether this root signed `certified`'s leaf (a new root invalidates old leaves)."""
        try:
            certified.leaf.verify_directly_issued_by(self.cert)
        except Exception:  # ValueError, TypeError or InvalidSignature: not ours either way.
            return False
        return True


def san_entries(names: Sequence[str]) -> list[x509.GeneralName]:
    """subjectAltName entries for DNS names and IP addresses (ACME CSRs use them too)."""
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            sans.append(x509.DNSName(name.lower()))
    return sans


def _create_root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    owner = _owner()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "apiclub local CA"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner),
            x509.NameAttribute(NameOID.COMMON_NAME, f"apiclub local CA {owner}"[:MAX_COMMON_NAME]),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        # pathlen 0: this root signs leaves only, never another CA (RFC 5280 4.2.1.9).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _load_root(storage: Storage) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = storage.path(ROOT_CERT_KEY), storage.path(ROOT_KEY_KEY)
    cert_pem, key_pem = (
        _read_root_file(storage, ROOT_CERT_KEY),
        _read_root_file(storage, ROOT_KEY_KEY),
    )
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise _root_error(cert_path, f"is not a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise _root_error(key_path, f"is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not public_keys_match(cert, key):
        raise _root_error(key_path, f"does not belong to {cert_path}")
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise _root_error(cert_path, f"expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    return cert, key


def _read_root_file(storage: Storage, key: str) -> bytes:
    try:
        return storage.read(key)
    except KeyError:
        raise _root_error(storage.path(key), "is missing") from None
    except StorageError as exc:
        raise _root_error(storage.path(key), f"cannot be read ({exc})") from None


def _root_error(path: Path, problem: str) -> CertificateError:
    return CertificateError(
        f"loading local CA: {path} {problem}; fix its permissions if it is only unreadable, "
        f"or delete {path.parent} to create a new local CA (clients must then trust the new root)"
    )


def _owner() -> str:
    user = "unknown"
    with contextlib.suppress(KeyError, OSError):
        user = getpass.getuser()
    return f"{user}@{socket.gethostname()}"


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
