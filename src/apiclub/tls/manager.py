"""The one object the server uses for certificates: obtain at start, serve by SNI, renew.

Start-up problems raise (`prepare`); background renewal logs and retries (`maintain`), and a
failed renewal keeps serving the current certificate, as certmagic's maintenance loop does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from apiclub.errors import ConfigError, StorageError
from apiclub.settings import Settings, TlsMode
from apiclub.tls.certified import MINUTES, CertifiedKey
from apiclub.tls.context import CertMap
from apiclub.tls.files import load_cert_files
from apiclub.tls.local_ca import LEAF_LIFETIME, LocalCA
from apiclub.tls.names import is_local_name
from apiclub.tls.storage import FileStorage

logger = logging.getLogger("apiclub.tls")

RENEW_CHECK_INTERVAL = 10 * MINUTES
LOCAL_CHAIN_KEY = "certs/local/fullchain.pem"
LOCAL_KEY_KEY = "certs/local/privkey.pem"
LOCAL_LOCK = "certs-local"


class CertManager:
    """Certificates for `settings.domains` from the source `settings.tls` names.

    Call `prepare()` once before serving, hand `server_context()` to the listener, and run
    `maintain(stop)` as a background task.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        leaf_lifetime: timedelta = LEAF_LIFETIME,
        check_interval: timedelta = RENEW_CHECK_INTERVAL,
    ) -> None:
        if settings.tls is TlsMode.OFF:
            raise ConfigError("APICLUB_TLS=off serves no certificates: do not build a CertManager")
        self.settings = settings
        self.leaf_lifetime = leaf_lifetime
        self.check_interval = check_interval
        self.storage = FileStorage(settings.data_dir)
        self._ca: LocalCA | None = None
        self._map: CertMap | None = None
        self._context: ssl.SSLContext | None = None
        self._file_stamp: tuple[int, int] | None = None

    def prepare(self) -> None:
        """Obtain the certificate (stored, issued or read from files) and build the SNI map.

        Raises:
            CertificateError: a certificate or key cannot be created, read or used.
            StorageError: the data directory cannot be written.
        """
        if self.settings.tls is TlsMode.FILES:
            certified = self._load_files()
        else:
            if self.settings.tls is TlsMode.AUTO:
                self._warn_public_names()
            self._ca = LocalCA.load_or_create(self.storage)
            certified = self._obtain_local(force=False)
        self._map = CertMap(certified)
        self._context = None
        logger.info(
            "serving certificate for %s, serial %x, valid until %s",
            ", ".join(certified.names),
            certified.leaf.serial_number,
            f"{certified.not_after:%Y-%m-%d %H:%M} UTC",
        )

    def server_context(self) -> ssl.SSLContext:
        """The listener's context; it picks the certificate per handshake from the live map."""
        if self._context is None:
            self._context = self._cert_map().server_context()
        return self._context

    def current_certificate(self) -> x509.Certificate:
        """The leaf served by default right now."""
        return self._cert_map().default.leaf

    def root_cert_path(self) -> Path | None:
        """The local CA's root certificate file, or None when certificates come from files."""
        return self._ca.root_cert_path if self._ca is not None else None

    def renew(self, force: bool = False) -> bool:
        """Renew the local leaf past 2/3 of its life (or if `force`), or reload changed files.

        Returns whether a new certificate is now being served.
        """
        cert_map = self._cert_map()
        if self.settings.tls is TlsMode.FILES:
            if not force and self._files_stamp() == self._file_stamp:
                return False
            certified = self._load_files()
        else:
            if not force and not cert_map.default.needs_renewal(datetime.now(UTC)):
                return False
            certified = self._obtain_local(force=force)
        if certified.leaf.serial_number == cert_map.default.leaf.serial_number:
            return False
        cert_map.replace(certified)
        logger.info(
            "renewed certificate for %s, serial %x, valid until %s",
            ", ".join(certified.names),
            certified.leaf.serial_number,
            f"{certified.not_after:%Y-%m-%d %H:%M} UTC",
        )
        return True

    async def maintain(self, stop: asyncio.Event) -> None:
        """Check for renewal every `check_interval` until `stop` is set; never raises.

        A failure is logged and retried on the next round; the current certificate stays
        in service meanwhile.
        """
        interval = self.check_interval.total_seconds()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
            else:
                return
            try:
                await asyncio.to_thread(self.renew)
            except Exception:
                logger.exception("certificate renewal failed; retrying in %s", self.check_interval)

    def _cert_map(self) -> CertMap:
        if self._map is None:
            raise RuntimeError("CertManager.prepare() must run before serving")
        return self._map

    def _obtain_local(self, *, force: bool) -> CertifiedKey:
        """Reuse the stored leaf if it is fresh, ours and covers the names; else issue one.

        Runs under the storage lock so two processes sharing the data directory agree on
        one leaf instead of overwriting each other's.
        """
        ca = self._ca
        if ca is None:
            raise RuntimeError("CertManager.prepare() must run before renewing")
        names = self.settings.domains
        with self.storage.lock(LOCAL_LOCK):
            stored = None if force else self._load_stored_local()
            now = datetime.now(UTC)
            if (
                stored is not None
                and ca.signed(stored)
                and not stored.needs_renewal(now)
                and not stored.uncovered(names)
            ):
                return stored
            certified = ca.issue_cert(names, self.leaf_lifetime)
            self.storage.write(LOCAL_KEY_KEY, certified.key_pem, private=True)
            self.storage.write(LOCAL_CHAIN_KEY, certified.chain_pem)
            return certified

    def _load_stored_local(self) -> CertifiedKey | None:
        try:
            chain = self.storage.read(LOCAL_CHAIN_KEY)
            key = self.storage.read(LOCAL_KEY_KEY)
        except KeyError:
            return None
        except StorageError as exc:
            logger.warning("ignoring the stored certificate: %s", exc)
            return None
        try:
            return CertifiedKey.from_pem(chain, key)
        except (ValueError, TypeError) as exc:
            logger.warning("ignoring the stored certificate (%s); issuing a new one", exc)
            return None

    def _load_files(self) -> CertifiedKey:
        cert_file, key_file = self.settings.cert_file, self.settings.key_file
        if cert_file is None or key_file is None:  # Settings refuses this; keeps mypy exact
            raise ConfigError("APICLUB_TLS=files needs APICLUB_CERT_FILE and APICLUB_KEY_FILE")
        stamp = self._files_stamp()
        certified = load_cert_files(cert_file, key_file, self.settings.domains)
        self._file_stamp = stamp
        return certified

    def _files_stamp(self) -> tuple[int, int] | None:
        cert_file, key_file = self.settings.cert_file, self.settings.key_file
        if cert_file is None or key_file is None:
            return None
        try:
            return (cert_file.stat().st_mtime_ns, key_file.stat().st_mtime_ns)
        except OSError:
            return None

    def _warn_public_names(self) -> None:
        for name in self.settings.domains:
            if not is_local_name(name):
                logger.warning(
                    "%s looks like a public name, but ACME is not available yet: it gets a "
                    "local CA certificate, which browsers will not trust unless the root is "
                    "installed (apiclub ca trust); use APICLUB_TLS=files for a public "
                    "certificate",
                    name,
                )


def root_cert_path(settings: Settings) -> Path:
    """Where the local CA's root certificate is, creating the CA on first use (`mkcert -CAROOT`).

    Raises:
        CertificateError: the stored CA is corrupt or unreadable.
        StorageError: the data directory cannot be written.
    """
    return LocalCA.load_or_create(FileStorage(settings.data_dir)).root_cert_path
