"""Certificates an operator gives as files (APICLUB_TLS=files), checked before serving.

Every problem is found at start-up, with a message naming the file and the fix, rather than
as a handshake failure that clients report much later and far less clearly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from apiclub.errors import CertificateError
from apiclub.tls.certified import CertifiedKey

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
    certified = CertifiedKey.from_files(
        cert_file, key_file, "APICLUB_CERT_FILE", "APICLUB_KEY_FILE"
    )
    leaf = certified.leaf
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
    for name in certified.uncovered(names):
        logger.warning(
            "%s does not cover %r (it covers %s): clients connecting by that name will reject it",
            cert_file,
            name,
            ", ".join(certified.names) or "no subjectAltName",
        )
    return certified
