"""PEM in and out: the one key serialiser and the one chain-and-key parser every source uses.

The local CA, the ACME client and the account key all write private keys with
`private_key_pem`; every stored or given certificate is read through `parse_chain_and_key`
(by `CertifiedKey.from_pem` and `CertifiedKey.from_files`), so a missing, garbled, encrypted
or mismatched file gets the same clear message wherever it was found: the file, the problem
and the fix. Writing a key 0600 whatever the umask is the storage's job
(`FileStorage.write(..., private=True)`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from apiclub.errors import CertificateError

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class PemError(CertificateError, ValueError):
    """A PEM file or blob cannot be used: missing, unreadable, not PEM, encrypted, mismatched.

    A `ValueError` too, which is what callers of `CertifiedKey.from_pem` have always caught.
    """


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    """`key` as unencrypted PKCS#8 PEM, the form nginx, OpenSSL and `ssl` all load."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_keys_match(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """Tell whether `key` is the private half of the certificate's public key."""
    return bool(cert.public_key().public_bytes(*_SPKI) == key.public_key().public_bytes(*_SPKI))


def parse_chain_and_key(
    chain_pem: bytes,
    key_pem: bytes,
    chain_name: str = "the certificate chain",
    key_name: str = "the private key",
) -> tuple[x509.Certificate, PrivateKeyTypes]:
    """The leaf (the chain's first certificate) and the private key, checked to belong together.

    `chain_name` and `key_name` say where the bytes came from in messages: a path, or
    `APICLUB_CERT_FILE /etc/...`.

    Raises:
        PemError: no certificate, no key, an encrypted key, or a key of another certificate.
    """
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError:
        raise PemError(
            f"{chain_name} holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----'): "
            "give the certificate chain, leaf first"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise PemError(
            f"{key_name} is encrypted: decrypt it with 'openssl pkey -in FILE -out KEY.pem' "
            "and give the result instead"
        ) from None
    except ValueError:
        raise PemError(
            f"{key_name} holds no PEM private key (expected '-----BEGIN PRIVATE KEY-----'): "
            "give the key of the certificate"
        ) from None
    if not public_keys_match(leaf, key):
        raise PemError(
            f"{key_name} does not belong to the certificate in {chain_name}: "
            "give the key the certificate was issued for"
        )
    return leaf, key


def read_pem_file(path: Path, name: str) -> bytes:
    """The bytes of a PEM file; `name` says which file in messages (`APICLUB_KEY_FILE /x`).

    Raises:
        PemError: it is missing, a directory, or unreadable.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PemError(f"{name} does not exist: give the path of an existing PEM file") from None
    except IsADirectoryError:
        raise PemError(f"{name} is a directory: give the path of a PEM file") from None
    except PermissionError:
        raise PemError(
            f"{name} cannot be read: permission denied; make it readable by the user "
            "apiclub runs as (chown or chmod), or copy it somewhere that user can read"
        ) from None
    except OSError as exc:
        raise PemError(f"{name} cannot be read: {exc.strerror or exc}") from None
