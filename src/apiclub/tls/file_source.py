"""The operator's certificate files (APICLUB_TLS=files), reloaded when they change on disk.

An operator (or certbot's deploy hook) replaces the files in place; the maintenance loop
notices the new modification times and serves the new certificate without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from apiclub.tls.certified import CertifiedKey
from apiclub.tls.files import load_cert_files

Stamp = tuple[int, int]
"""Modification times (ns) of the certificate file and the key file."""


class FileSource:
    """A `LeafSource`: the chain and key in `cert_file` and `key_file`, checked for `names`."""

    def __init__(self, cert_file: Path, key_file: Path, names: Sequence[str]) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.names = names
        self._stamp: Stamp | None = None

    def obtain(self) -> CertifiedKey:
        """Read and check both files (see `load_cert_files`).

        Raises:
            CertificateError: a file is missing, unreadable, mismatched or out of date.
        """
        stamp = self._files_stamp()
        certified = load_cert_files(self.cert_file, self.key_file, self.names)
        self._stamp = stamp
        return certified

    def refresh(self, current: CertifiedKey, *, force: bool = False) -> CertifiedKey | None:
        """The files again if they changed since the last read (or if `force`), else None."""
        if not force and self._files_stamp() == self._stamp:
            return None
        return self.obtain()

    def _files_stamp(self) -> Stamp | None:
        try:
            return (self.cert_file.stat().st_mtime_ns, self.key_file.stat().st_mtime_ns)
        except OSError:
            return None
