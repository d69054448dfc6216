"""Obtained certificates in the data directory, one folder per issuer and name (certmagic's layout).

    certs/<issuer-id>/<name>/fullchain.pem   leaf + intermediates, 0644
    certs/<issuer-id>/<name>/privkey.pem     its key, 0600
    certs/<issuer-id>/<name>/renewal.json    when the server means to renew it and why
                                             (the ARI window), or why it is paused; 0644
    certs/local/fullchain.pem, privkey.pem   the local CA's leaf for local names

Each file is replaced atomically; the key is written before the chain, and a reader that
catches the new chain with the old key sees a mismatch and simply tries again later. Every
process sharing the data directory reads the same files, so a certificate renewed by one is
picked up by the others (`stamp` changes).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.x509.oid import NameOID

from apiclub.errors import StorageError
from apiclub.tls import keys
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.pem import PemError
from apiclub.tls.storage import Storage

logger = logging.getLogger("apiclub.tls")


Stamp = tuple[int, int]


class CertStore:
    """The certificates one issuer obtained, by name."""

    def __init__(self, storage: Storage, issuer_id: str) -> None:
        self.storage = storage
        self.issuer_id = issuer_id

    def chain_key(self, name: str) -> str:
        """Storage key of `name`'s chain."""
        return keys.site_cert(self.issuer_id, name)

    def key_key(self, name: str) -> str:
        """Storage key of `name`'s private key."""
        return keys.site_private_key(self.issuer_id, name)

    def load(self, name: str) -> CertifiedKey | None:
        """The stored certificate of `name`, or None if there is none or it is unusable."""
        return load_stored(self.storage, self.chain_key(name), self.key_key(name))

    def save(self, name: str, certified: CertifiedKey) -> None:
        """Store the key (0600), then the chain, each atomically.

        Raises:
            StorageError: the data directory cannot be written.
        """
        self.storage.write(self.key_key(name), certified.key_pem, private=True)
        self.storage.write(self.chain_key(name), certified.chain_pem)

    def save_renewal(self, name: str, state: dict[str, str]) -> None:
        """Record the renewal plan of `name` for `apiclub certs list` (best effort)."""
        try:
            self.storage.write(keys.site_meta(self.issuer_id, name), json.dumps(state).encode())
        except StorageError as exc:
            logger.warning("cannot record the renewal plan of %s: %s", name, exc)

    def load_renewal(self, name: str) -> dict[str, str]:
        """The recorded renewal plan of `name` (empty if none or unreadable)."""
        return read_renewal(self.storage.path(keys.site_meta(self.issuer_id, name)))

    def stamp(self, name: str) -> Stamp | None:
        """Modification time and size of the chain file: changes when anyone renews it."""
        try:
            info = self.storage.path(self.chain_key(name)).stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the cross-process lock of `name`: one order per certificate at a time."""
        with self.storage.lock(keys.cert_lock(self.issuer_id, name)):
            yield


def load_stored(storage: Storage, chain_key: str, key_key: str) -> CertifiedKey | None:
    """The one loader of a certificate the store keeps (an issuer's, or the local leaf).

    None when there is none, or when it is unusable (logged, naming the file and the
    problem): the caller then obtains a new one, which replaces the files.
    """
    chain_path, key_path = storage.path(chain_key), storage.path(key_key)
    try:
        chain = storage.read(chain_key)
        key = storage.read(key_key)
    except KeyError:
        return None
    except StorageError as exc:
        logger.warning("ignoring the stored certificate %s: %s; replacing it", chain_path, exc)
        return None
    try:
        return CertifiedKey.from_pem(chain, key, str(chain_path), str(key_path))
    except PemError as exc:
        logger.warning("ignoring the stored certificate %s (%s); replacing it", chain_path, exc)
        return None


@dataclass(frozen=True)
class StoredCert:
    """One certificate found in the store, for `apiclub certs list`."""

    path: Path
    names: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    serial: int
    renewal: dict[str, str]
    """What the server recorded in `renewal.json`: `renew_at`, `reason`, `paused` (if any)."""

    def days_left(self, now: datetime) -> float:
        """Days until expiry (negative once expired)."""
        return (self.not_after - now).total_seconds() / 86400


def list_stored(data_dir: Path) -> list[StoredCert]:
    """Every chain under `<data_dir>/certs`, sorted by path; unreadable ones are skipped."""
    found = []
    for path in sorted((data_dir / keys.CERTS_DIR).rglob(keys.CHAIN_FILE)):
        try:
            certified = CertifiedKey.from_files(path, path.parent / keys.KEY_FILE)
        except PemError as exc:
            logger.warning("skipping %s: %s", path, exc)
            continue
        issuer = certified.leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        found.append(
            StoredCert(
                path=path,
                names=certified.names,
                issuer=str(issuer[0].value) if issuer else certified.leaf.issuer.rfc4514_string(),
                not_before=certified.not_before,
                not_after=certified.not_after,
                serial=certified.leaf.serial_number,
                renewal=read_renewal(path.parent / keys.META_FILE),
            )
        )
    return found


def read_renewal(path: Path) -> dict[str, str]:
    """A `renewal.json` as a dict of strings; empty when missing or unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def list_paused(data_dir: Path) -> list[tuple[str, str]]:
    """(name, unpause URL) for every name a CA paused (the zombie rule), certificate or not."""
    found = []
    for path in sorted((data_dir / keys.CERTS_DIR).glob(f"*/*/{keys.META_FILE}")):
        url = read_renewal(path).get("paused")
        if url:
            found.append((path.parent.name, url))
    return found
