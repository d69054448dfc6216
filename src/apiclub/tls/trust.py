"""`apiclub ca trust` / `untrust`: every store this machine's clients read, like mkcert.

The system store (curl, Python, most tools; needs root) and the NSS databases browsers read
(per user). Each store's outcome is reported on its own line: nothing is changed silently, and
a root whose private key others can read is never installed, since anyone holding that key
could then impersonate every site to this machine.
"""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from apiclub.errors import CertificateError
from apiclub.tls.trust_nss import add_to_nss, find_databases, remove_from_nss
from apiclub.tls.trust_result import StoreResult
from apiclub.tls.trust_system import SYSTEM_STORES, SystemStore, add_to_system, remove_from_system

STORE_KINDS = frozenset({"system", "nss"})
"""What `--store` picks from, as mkcert's TRUST_STORES: the OS store, the browsers' NSS files."""


def trust_root(
    root_path: Path,
    key_path: Path,
    *,
    home: Path | None = None,
    stores: tuple[SystemStore, ...] = SYSTEM_STORES,
    as_root: bool | None = None,
    kinds: frozenset[str] = STORE_KINDS,
) -> list[StoreResult]:
    """Add the local root to the system store and the user's NSS databases.

    Args:
        root_path: the local CA's root certificate (PEM).
        key_path: its private key, which must be readable by its owner only.
        home: whose browsers to change; the current user's when None.
        stores: the system stores known (tests point them elsewhere).
        as_root: whether the system store may be written; the effective uid decides when None.
        kinds: which of STORE_KINDS to change.

    Raises:
        CertificateError: the root is missing or unreadable, or its key is not private.
    """
    root = _load(root_path)
    _check_key_private(key_path)
    results = []
    if "system" in kinds:
        results.append(add_to_system(root_path, stores=stores, as_root=as_root))
    if "nss" in kinds:
        results += add_to_nss(root_path, root, find_databases(home or Path.home()))
    return results


def untrust_root(
    root_path: Path,
    *,
    home: Path | None = None,
    stores: tuple[SystemStore, ...] = SYSTEM_STORES,
    as_root: bool | None = None,
    kinds: frozenset[str] = STORE_KINDS,
) -> list[StoreResult]:
    """Take the local root out of every store `trust_root` adds it to."""
    root = _load(root_path)
    results = []
    if "system" in kinds:
        results.append(remove_from_system(root_path, stores=stores, as_root=as_root))
    if "nss" in kinds:
        results += remove_from_nss(root, find_databases(home or Path.home()))
    return results


def _load(root_path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(root_path.read_bytes())
    except FileNotFoundError:
        raise CertificateError(
            f"{root_path} does not exist: run 'apiclub ca path' to create the CA"
        ) from None
    except (OSError, ValueError) as exc:
        raise CertificateError(f"reading the root {root_path}: {exc}") from exc


def _check_key_private(key_path: Path) -> None:
    try:
        mode = stat.S_IMODE(key_path.stat().st_mode)
    except OSError as exc:
        raise CertificateError(
            f"the root's key {key_path} cannot be checked ({exc.strerror or exc}): refusing to "
            "trust a root whose key may not be private"
        ) from exc
    if mode & 0o077:
        raise CertificateError(
            f"the root's key {key_path} has mode {mode:04o}, readable by others: run "
            f"'chmod 600 {key_path}' (and consider the CA compromised) before trusting it"
        )
