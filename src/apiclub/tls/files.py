"""Certificates an operator gives as files (APICLUB_TLS=files), checked before serving.

Every problem is found at start-up, with a message naming the file and the fix, rather than
as a handshake failure that clients report much later and far less clearly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apiclub.errors import CertificateError
from apiclub.tls.certified import CertifiedKey, public_keys_match

logger = logging.getLogger("apiclub.tls")


def load_cert_files(
    cert_file: Path, key_file: Path, names: Sequence[str], *, now: datetime | None = None
) -> CertifiedKey:
    """Read and check a PEM chain (leaf first) and its private key.

    Names the leaf does not cover are logged as warnings, not refused: the operator may serve
    extra names on purpose.

    Raises:
        CertificateError: a file is missing, unreadable or not PEM; the key does not match the
            certificate; or the certificate is expired or not yet valid.
    """
    now = now or datetime.now(UTC)
    chain_pem = _read(cert_file, "APICLUB_CERT_FILE")
    key_pem = _read(key_file, "APICLUB_KEY_FILE")
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError:
        raise CertificateError(
            f"APICLUB_CERT_FILE {cert_file} holds no PEM certificate "
            "(expected '-----BEGIN CERTIFICATE-----'): give the certificate chain, leaf first"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(
            f"APICLUB_KEY_FILE {key_file} is encrypted: decrypt it with "
            f"'openssl pkey -in {key_file} -out KEY.pem' and point APICLUB_KEY_FILE at the result"
        ) from None
    except ValueError:
        raise CertificateError(
            f"APICLUB_KEY_FILE {key_file} holds no PEM private key "
            "(expected '-----BEGIN PRIVATE KEY-----'): give the key of the certificate"
        ) from None
    if not public_keys_match(leaf, key):
        raise CertificateError(
            f"APICLUB_KEY_FILE {key_file} does not belong to the certificate in {cert_file}: "
            "give the key the certificate was issued for"
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateError(
            f"APICLUB_CERT_FILE {cert_file} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} "
            "UTC: renew it and replace the file (or use APICLUB_TLS=auto)"
        )
    if now < leaf.not_valid_before_utc:
        raise CertificateError(
            f"APICLUB_CERT_FILE {cert_file} is not valid until "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this machine's clock"
        )
    certified = CertifiedKey(chain_pem=chain_pem, key_pem=key_pem, leaf=leaf)
    for name in certified.uncovered(names):
        logger.warning(
            "%s does not cover %r (it covers %s): clients connecting by that name will reject it",
            cert_file,
            name,
            ", ".join(certified.names) or "no subjectAltName",
        )
    return certified


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"{variable} {path} does not exist: give the path of an existing PEM file"
        ) from None
    except IsADirectoryError:
        raise CertificateError(
            f"{variable} {path} is a directory: give the path of a PEM file"
        ) from None
    except PermissionError:
        raise CertificateError(
            f"{variable} {path} cannot be read: permission denied; make it readable by the user "
            "apiclub runs as (chown or chmod), or copy it somewhere that user can read"
        ) from None
    except OSError as exc:
        raise CertificateError(f"{variable} {path} cannot be read: {exc.strerror or exc}") from None
