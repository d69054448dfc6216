"""One certificate chain with its private key: what every certificate source hands back.

The local CA, the files an operator gives and ACME all produce a `CertifiedKey`, so
the SNI map and the renewal loop never care where a certificate came from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from apiclub.tls.pem import parse_chain_and_key, read_pem_file

# Renew once less than this share of the lifetime is left (Let's Encrypt and certmagic
# renew at 1/3 remaining), so a failed attempt has many retries before expiry.
RENEW_WHEN_REMAINING = 1 / 3


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate chain (leaf first) in PEM, its private key in PEM, and the parsed leaf."""

    chain_pem: bytes
    """The leaf, then any intermediates; the root stays out (clients hold it already)."""
    key_pem: bytes
    """The leaf's private key, unencrypted PKCS#8 or traditional PEM. Never log it."""
    leaf: x509.Certificate
    """The parsed leaf, for names, dates and serial."""

    @classmethod
    def from_pem(
        cls,
        chain_pem: bytes,
        key_pem: bytes,
        chain_name: str = "the certificate chain",
        key_name: str = "the private key",
    ) -> CertifiedKey:
        """Parse and check that the key belongs to the leaf (`pem.parse_chain_and_key`).

        Raises:
            PemError: no certificate, no key, an encrypted key, or the key does not match the
                leaf; a `ValueError` too. The message names `chain_name` or `key_name`.
        """
        leaf, _ = parse_chain_and_key(chain_pem, key_pem, chain_name, key_name)
        return cls(chain_pem=chain_pem, key_pem=key_pem, leaf=leaf)

    @classmethod
    def from_files(
        cls, chain_path: Path, key_path: Path, chain_label: str = "", key_label: str = ""
    ) -> CertifiedKey:
        """The one loader of a stored certificate: a PEM chain (leaf first) and its key.

        Messages name the file, after `chain_label`/`key_label` when given (the setting
        that points at it: `APICLUB_CERT_FILE`), and say how to fix it.

        Raises:
            PemError: a file is missing, a directory or unreadable; or see `from_pem`.
        """
        chain_name = f"{chain_label} {chain_path}".lstrip()
        key_name = f"{key_label} {key_path}".lstrip()
        chain_pem = read_pem_file(chain_path, chain_name)
        key_pem = read_pem_file(key_path, key_name)
        return cls.from_pem(chain_pem, key_pem, chain_name, key_name)

    @property
    def not_before(self) -> datetime:
        """Start of validity, timezone-aware UTC."""
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        """End of validity, timezone-aware UTC."""
        return self.leaf.not_valid_after_utc

    @property
    def lifetime(self) -> timedelta:
        """How long the leaf is valid in total."""
        return self.not_after - self.not_before

    @property
    def names(self) -> tuple[str, ...]:
        """The DNS names and IP addresses in the subjectAltName extension."""
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return ()
        dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        return (*dns, *ips)

    def is_valid_at(self, now: datetime) -> bool:
        """Tell whether `now` lies within the validity period."""
        return self.not_before <= now <= self.not_after

    def needs_renewal(self, now: datetime) -> bool:
        """Tell whether less than a third of the lifetime is left (or it is not valid now)."""
        if not self.is_valid_at(now):
            return True
        return self.not_after - now < self.lifetime * RENEW_WHEN_REMAINING

    def covers(self, name: str) -> bool:
        """Tell whether the leaf is valid for `name` (RFC 6125 6.4: one-label wildcards)."""
        return name_matches(name, self.names)

    def uncovered(self, names: Iterable[str]) -> list[str]:
        """The names in `names` that this leaf is not valid for."""
        return [name for name in names if not self.covers(name)]


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """Match a host name or IP against SAN entries; `*.a.b` matches `x.a.b` only, not `a.b`."""
    text = name.strip().strip("[]").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    for pattern in patterns:
        if ip is not None:
            try:
                if ipaddress.ip_address(pattern) == ip:
                    return True
            except ValueError:
                continue
        elif pattern == text or (
            pattern.startswith("*.") and "." in text and text.split(".", 1)[1] == pattern[2:]
        ):
            return True
    return False
