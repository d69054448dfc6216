"""The local CA's leaf for the local names (localhost, IPs, private suffixes), kept on disk.

One leaf covers every local name and is stored under `certs/local/`, so a restart serves the
same certificate (a client that pinned it notices nothing) and two processes sharing the data
directory agree on one leaf instead of overwriting each other's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from apiclub.tls import keys
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import load_stored
from apiclub.tls.local_ca import LEAF_LIFETIME, LocalCA
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls")

LOCAL_CHAIN_KEY = keys.LOCAL_CERT  # the names the tests and callers have always used
LOCAL_KEY_KEY = keys.LOCAL_KEY


class LocalSource:
    """A `LeafSource`: the stored local leaf while it is fresh, else a new one from `ca`."""

    def __init__(
        self,
        storage: Storage,
        ca: LocalCA,
        names: Sequence[str],
        lifetime: timedelta = LEAF_LIFETIME,
    ) -> None:
        self.storage = storage
        self.ca = ca
        self.names = tuple(names)
        self.lifetime = lifetime

    def obtain(self) -> CertifiedKey:
        """The stored leaf if it is fresh, ours and covers the names; else a new one.

        Raises:
            CertificateError: the leaf cannot be signed.
            StorageError: the new leaf cannot be stored.
        """
        return self._obtain(force=False)

    def refresh(self, current: CertifiedKey, *, force: bool = False) -> CertifiedKey | None:
        """A new leaf past 2/3 of the current one's life (or if `force`), else None."""
        if not force and not current.needs_renewal(datetime.now(UTC)):
            return None
        return self._obtain(force=force)

    def _obtain(self, *, force: bool) -> CertifiedKey:
        # Under the storage lock: two processes sharing the data directory agree on one leaf.
        with self.storage.lock(keys.LOCAL_LOCK):
            stored = None if force else self._load_stored()
            now = datetime.now(UTC)
            if (
                stored is not None
                and self.ca.signed(stored)
                and not stored.needs_renewal(now)
                and not stored.uncovered(self.names)
            ):
                return stored
            certified = self.ca.issue_cert(self.names, self.lifetime)
            self.storage.write(LOCAL_KEY_KEY, certified.key_pem, private=True)
            self.storage.write(LOCAL_CHAIN_KEY, certified.chain_pem)
            return certified

    def _load_stored(self) -> CertifiedKey | None:
        return load_stored(self.storage, LOCAL_CHAIN_KEY, LOCAL_KEY_KEY)
