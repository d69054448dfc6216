"""The NSS databases that browsers on Linux read instead of the system store, as mkcert does.

Chromium and Chrome read `~/.pki/nssdb` (created here when missing, so a browser started later
finds the root); every Firefox profile has its own `cert9.db`. The snap packages keep theirs
under `~/snap`. `certutil` (Debian's `libnss3-tools`) does the writing: NSS databases are
SQLite files with their own locking, not a format to edit by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from apiclub.tls.trust_result import StoreResult

CERTUTIL_MISSING = (
    "certutil not found: install it (Debian/Ubuntu: apt-get install libnss3-tools; "
    "Fedora: dnf install nss-tools; Arch: pacman -S nss), then run this again"
)
# certutil's trust flags: "C" = a trusted CA for TLS servers; nothing for mail or code signing.
TRUST_FLAGS = "C,,"
CERTUTIL_TIMEOUT = 30  # seconds


@dataclass(frozen=True)
class NssDatabase:
    """One NSS database: which browser reads it and where it is."""

    browser: str
    path: Path
    create: bool = False
    """Create it when missing (Chromium's shared database; a Firefox profile makes its own)."""

    @property
    def label(self) -> str:
        """How the results name this database."""
        return f"{self.browser} NSS database ({self.path})"


def nickname(root: x509.Certificate) -> str:
    """The name the root is stored under; the serial tells two apiclub roots apart."""
    return f"apiclub local CA {root.serial_number:x}"


def find_databases(home: Path) -> list[NssDatabase]:
    """The NSS databases of `home`'s browsers: Chromium's (always), each Firefox profile's."""
    found = [NssDatabase("Chromium/Chrome", home / ".pki" / "nssdb", create=True)]
    snap_chromium = home / "snap" / "chromium" / "current" / ".pki" / "nssdb"
    if snap_chromium.is_dir():
        found.append(NssDatabase("Chromium (snap)", snap_chromium))
    for profiles in (
        home / ".mozilla" / "firefox",
        home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
    ):
        if profiles.is_dir():
            found.extend(
                NssDatabase(f"Firefox profile {cert9.parent.name}", cert9.parent)
                for cert9 in sorted(profiles.glob("*/cert9.db"))
            )
    return found


def add_to_nss(
    root_path: Path, root: x509.Certificate, databases: list[NssDatabase]
) -> list[StoreResult]:
    """Add the root to each database as a trusted CA for servers."""
    certutil = shutil.which("certutil")
    if certutil is None:
        return [StoreResult("NSS databases (Chromium, Firefox)", "skipped", CERTUTIL_MISSING)]
    name = nickname(root)
    results = []
    for db in databases:
        if not (db.path / "cert9.db").exists():
            if not db.create:
                continue
            db.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            made = _certutil(certutil, "-N", "-d", f"sql:{db.path}", "--empty-password")
            if made.returncode != 0:
                results.append(StoreResult(db.label, "failed", f"creating it: {_why(made)}"))
                continue
        if _holds(certutil, db, name):
            results.append(StoreResult(db.label, "present", f"already holds {name!r}"))
            continue
        added = _certutil(
            certutil,
            "-A",
            "-d",
            f"sql:{db.path}",
            "-t",
            TRUST_FLAGS,
            "-n",
            name,
            "-i",
            str(root_path),
        )
        if added.returncode != 0:
            results.append(StoreResult(db.label, "failed", _why(added)))
        else:
            results.append(StoreResult(db.label, "added", f"as {name!r}"))
    return results


def remove_from_nss(root: x509.Certificate, databases: list[NssDatabase]) -> list[StoreResult]:
    """Delete the root from each database that holds it."""
    certutil = shutil.which("certutil")
    if certutil is None:
        return [StoreResult("NSS databases (Chromium, Firefox)", "skipped", CERTUTIL_MISSING)]
    name = nickname(root)
    results = []
    for db in databases:
        if not (db.path / "cert9.db").exists():
            continue
        if not _holds(certutil, db, name):
            results.append(StoreResult(db.label, "absent", f"does not hold {name!r}"))
            continue
        deleted = _certutil(certutil, "-D", "-d", f"sql:{db.path}", "-n", name)
        if deleted.returncode != 0:
            results.append(StoreResult(db.label, "failed", _why(deleted)))
        else:
            results.append(StoreResult(db.label, "removed", f"deleted {name!r}"))
    return results


def _holds(certutil: str, db: NssDatabase, name: str) -> bool:
    return _certutil(certutil, "-L", "-d", f"sql:{db.path}", "-n", name).returncode == 0


def _certutil(certutil: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - certutil found on PATH, arguments are ours
        [certutil, *args], capture_output=True, text=True, check=False, timeout=CERTUTIL_TIMEOUT
    )


def _why(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or result.stdout).strip().splitlines()
    return f"certutil exit {result.returncode}: {text[-1] if text else 'no output'}"
