"""Checks of how groups of settings fit together, run by `Settings.__post_init__`.

Kept apart from `settings` so that module stays a readable list of fields; each error names
the variable, the bad value and the fix.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from apiclub.errors import ConfigError
from apiclub.setting_values import LETS_ENCRYPT_STAGING_DIRECTORY, TlsMode, check_replica_url
from apiclub.units import DAYS

if TYPE_CHECKING:
    from apiclub.settings import Settings


def check_backups(self: Settings) -> None:
    """The backup and replication settings fit together."""
    if self.backup_every is not None and not 1 <= self.backup_every <= 366 * DAYS:
        raise ConfigError(
            f"APICLUB_BACKUP_EVERY={self.backup_every!r} is not a duration from 1 s to a "
            "year: give e.g. 1h"
        )
    if self.backup_keep < 1:
        raise ConfigError(
            f"APICLUB_BACKUP_KEEP={self.backup_keep!r} must be at least 1 (snapshots kept)"
        )
    if self.replicate is not None:
        check_replica_url(self.replicate)
        if self.database_url is not None:
            raise ConfigError(
                "APICLUB_REPLICATE replicates SQLite with Litestream; with "
                "APICLUB_DATABASE_URL use PostgreSQL's own replication or pg_dump instead"
            )


def check_acme(self: Settings) -> None:
    """The ACME settings are well formed and fit together."""
    for directory in self.acme_directories or ("",):
        url = urlsplit(directory)
        if url.scheme != "https" or not url.hostname:
            raise ConfigError(
                f"APICLUB_ACME_DIRECTORY={self.acme_directory!r} is not an https:// URL "
                f"(or a comma-separated list of them): give the ACME server's directory, "
                f"e.g. {LETS_ENCRYPT_STAGING_DIRECTORY}"
            )
    if self.acme_email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", self.acme_email):
        raise ConfigError(
            f"APICLUB_ACME_EMAIL={self.acme_email!r} is not an e-mail address "
            "(e.g. you@example.com)"
        )
    if self.tls is TlsMode.ACME and not self.acme_agree_tos:
        raise ConfigError(
            "APICLUB_TLS=acme needs the ACME server's terms of service agreed: set "
            "APICLUB_ACME_AGREE_TOS=1 (--acme-agree-tos) after reading them"
        )
    if self.acme_profile is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", self.acme_profile):
        raise ConfigError(
            f"APICLUB_ACME_PROFILE={self.acme_profile!r} is not a profile name: give one "
            "the CA's directory lists, e.g. shortlived, or unset it"
        )
    if (self.acme_eab_kid is None) != (self.acme_eab_hmac_key is None):
        raise ConfigError(
            "External Account Binding needs both APICLUB_ACME_EAB_KID and "
            "APICLUB_ACME_EAB_HMAC_KEY (or APICLUB_ACME_EAB_HMAC_KEY_FILE): give both, "
            "as the CA issued them, or neither"
        )
    if self.acme_eab_hmac_key is not None and not re.fullmatch(
        r"[A-Za-z0-9_-]+={0,2}", self.acme_eab_hmac_key
    ):
        raise ConfigError(
            "APICLUB_ACME_EAB_HMAC_KEY is not base64url (A-Z, a-z, 0-9, - and _): copy the "
            "HMAC key exactly as the CA shows it"
        )
