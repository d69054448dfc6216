"""Where the default certificate comes from: the local CA, or files an operator gives.

The default certificate answers handshakes without SNI (IP addresses) and the local names.
Two sources keep one (`LocalSource`, `FileSource`); the manager holds whichever the TLS mode
calls for and asks it, on each maintenance round, whether a replacement is due.
"""

from __future__ import annotations

from typing import Protocol

from apiclub.tls.certified import CertifiedKey


class LeafSource(Protocol):
    """Gives the default certificate. Contract: `obtain` blocks until it returns a certificate
    (or raises `CertificateError`, `StorageError`, `ConfigError` naming the fix); `refresh`
    returns a replacement for `current` when one is due (always tries if `force`), or None
    when `current` stays. A replacement may carry the serial of `current` (nothing changed).
    """

    def obtain(self) -> CertifiedKey:
        """The certificate to serve at start-up."""
        ...

    def refresh(self, current: CertifiedKey, *, force: bool = False) -> CertifiedKey | None:
        """A certificate to serve instead of `current`, or None when it is still good."""
        ...
