"""The exceptions apiclub raises at its boundaries.

Every start-up failure is one of these, so the CLI can print one clear line and exit non-zero::

    ApiclubError
    ├── ConfigError        a setting is missing or malformed
    ├── CertificateError   a certificate or key cannot be created, read or used
    ├── MigrationError     a database migration failed
    ├── StorageError       the data directory cannot be read or written
    ├── ListenError        a listening socket cannot be bound
    ├── TokenError         `apiclub tokens`: a bad name, a name taken or unknown
    └── BackupError        a snapshot cannot be taken, verified or restored

Messages say what failed, why, and how to fix it.
"""

from __future__ import annotations


class ApiclubError(Exception):
    """Base class of every error apiclub reports to an operator."""


class ConfigError(ApiclubError):
    """A setting is missing or malformed."""


class CertificateError(ApiclubError):
    """A certificate or key cannot be created, read or used."""


class MigrationError(ApiclubError):
    """A database migration failed; the process must not serve."""


class StorageError(ApiclubError):
    """The data directory cannot be read or written."""


class ListenError(ApiclubError):
    """A listening socket cannot be bound (port in use, no permission)."""


class TokenError(ApiclubError):
    """An `apiclub tokens` command cannot do what it was asked (bad, taken or unknown name)."""


class BackupError(ApiclubError):
    """A snapshot cannot be taken, verified or restored; nothing was changed."""
