"""The one object the server uses for certificates: obtain at start, serve by SNI, renew.

Local names (localhost, IPs, private suffixes) share one local-CA leaf; each public name has
its own ACME certificate (`ManagedCert`). Start-up problems raise (`prepare`), and start-up
never waits on the network: a public name is served from the store or by a local stand-in
until its certificate arrives. Background work logs and retries (`maintain`), and a failed
renewal keeps serving the current certificate, as certmagic's maintenance loop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from apiclub.errors import ApiclubError, CertificateError, ConfigError, StorageError
from apiclub.settings import Settings, TlsMode
from apiclub.tls.acme_client import POLL_INTERVAL
from apiclub.tls.certified import MINUTES, SECONDS, CertifiedKey
from apiclub.tls.certstore import CertStore
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.context import CertMap
from apiclub.tls.files import load_cert_files
from apiclub.tls.issuers import AcmeIssuer, Http01Listener, LocalIssuer
from apiclub.tls.live import write_live
from apiclub.tls.local_ca import LEAF_LIFETIME, LocalCA
from apiclub.tls.managed import RETRY_INITIAL, RETRY_MAX, STANDIN_LIFETIME, Backoff, ManagedCert
from apiclub.tls.names import is_local_name
from apiclub.tls.storage import FileStorage

logger = logging.getLogger("apiclub.tls")

RENEW_CHECK_INTERVAL = 10 * MINUTES
# How often each ACME certificate is checked: due for renewal, or renewed in the store by
# another process (`apiclub certs renew`), which is then served within this interval.
STORE_CHECK_INTERVAL = 30 * SECONDS
LOCAL_CHAIN_KEY = "certs/local/fullchain.pem"
LOCAL_KEY_KEY = "certs/local/privkey.pem"
LOCAL_LOCK = "certs-local"


class CertManager:
    """Certificates for `settings.domains` from the source `settings.tls` names.

    Call `prepare()` once before serving, hand `server_context()` to the listener, and run
    `maintain(stop)` as a background task. `challenges` is what the port-80 listener answers
    ACME's HTTP-01 requests from; without a server, `http01_listener` answers them during
    each order (`apiclub certs ...`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        leaf_lifetime: timedelta = LEAF_LIFETIME,
        check_interval: timedelta = RENEW_CHECK_INTERVAL,
        store_check_interval: timedelta = STORE_CHECK_INTERVAL,
        retry_initial: timedelta = RETRY_INITIAL,
        retry_max: timedelta = RETRY_MAX,
        acme_poll_interval: timedelta = POLL_INTERVAL,
        http01_listener: Http01Listener | None = None,
    ) -> None:
        if settings.tls is TlsMode.OFF and not settings.manage_certs:
            raise ConfigError("APICLUB_TLS=off serves no certificates: do not build a CertManager")
        self.settings = settings
        # Behind a proxy (TLS off, APICLUB_MANAGE_CERTS) the names are certified as in `auto`.
        self.mode = TlsMode.AUTO if settings.tls is TlsMode.OFF else settings.tls
        self.leaf_lifetime = leaf_lifetime
        self.check_interval = check_interval
        self.store_check_interval = store_check_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.acme_poll_interval = acme_poll_interval
        self.http01_listener = http01_listener
        self.storage = FileStorage(settings.data_dir)
        self.challenges = ChallengeStore(self.storage)
        self._ca: LocalCA | None = None
        self._acme: AcmeIssuer | None = None
        self._local: CertifiedKey | None = None
        self._managed: dict[str, ManagedCert] = {}
        self._map: CertMap | None = None
        self._context: ssl.SSLContext | None = None
        self._file_stamp: tuple[int, int] | None = None
        self._publishing = threading.Lock()

    @property
    def local_names(self) -> tuple[str, ...]:
        """The names the local CA certifies (all of them in `internal` mode)."""
        acme = set(self.acme_names)
        return tuple(name for name in self.settings.domains if name not in acme)

    @property
    def acme_names(self) -> tuple[str, ...]:
        """The names ordered from the ACME server: public ones in `auto` mode, all in `acme`."""
        mode = self.mode
        if mode is TlsMode.ACME:
            return self.settings.domains
        if mode is not TlsMode.AUTO or not self.settings.acme_agree_tos:
            return ()
        return tuple(name for name in self.settings.domains if not is_local_name(name))

    def prepare(self) -> None:
        """Obtain the certificates (stored, issued locally or read from files), build the map.

        Never waits on an ACME server: a public name without a stored certificate gets a
        short-lived local-CA stand-in, replaced by `maintain` when the real one arrives.

        Raises:
            CertificateError: a certificate or key cannot be created, read or used.
            StorageError: the data directory cannot be written.
        """
        if self.mode is TlsMode.FILES:
            self._local = self._load_files()
        else:
            if self.mode is TlsMode.AUTO:
                self._warn_public_names()
            self._ca = LocalCA.load_or_create(self.storage)
            if self.local_names:
                self._local = self._obtain_local(force=False)
            for name in self.acme_names:
                managed = self._manage(name)
                managed.load()
        self._publish()
        for certified in self._served():
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
        """The leaf served by default (no SNI, or an unknown name) right now."""
        return self._cert_map().default.leaf

    def certificate_for(self, name: str) -> CertifiedKey:
        """The certificate a handshake naming `name` gets right now."""
        managed = self._managed.get(name)
        if managed is not None and managed.current is not None:
            return managed.current
        return self._cert_map().default

    def root_cert_path(self) -> Path | None:
        """The local CA's root certificate file, or None when certificates come from files."""
        return self._ca.root_cert_path if self._ca is not None else None

    def renew(self, force: bool = False) -> bool:
        """Renew the local leaf past 2/3 of its life (or if `force`), or reload changed files.

        Returns whether a new certificate is now being served.
        """
        current = self._local
        if current is None:
            return False
        if self.mode is TlsMode.FILES:
            if not force and self._files_stamp() == self._file_stamp:
                return False
            certified = self._load_files()
        else:
            if not force and not current.needs_renewal(datetime.now(UTC)):
                return False
            certified = self._obtain_local(force=force)
        if certified.leaf.serial_number == current.leaf.serial_number:
            return False
        self._local = certified
        self._publish()
        logger.info(
            "renewed certificate for %s, serial %x, valid until %s",
            ", ".join(certified.names),
            certified.leaf.serial_number,
            f"{certified.not_after:%Y-%m-%d %H:%M} UTC",
        )
        return True

    def renew_acme(self, force: bool = False, cancel: threading.Event | None = None) -> list[str]:
        """Obtain every ACME certificate that is missing or due (all of them if `force`) now.

        For `apiclub certs renew`; returns the names that got a new certificate.

        Raises:
            AcmeError, CertificateError, StorageError: an order failed (the first one stops).
        """
        renewed = []
        for name in self.acme_names:
            managed = self._managed.get(name)
            if managed is None:  # not serving: no stand-in, just what the store holds
                managed = self._manage(name)
                managed.load(standin=False)
            if (force or managed.due()) and managed.obtain(force=force, cancel=cancel):
                renewed.append(name)
        if self._map is not None:
            self._publish()
        return renewed

    def issue(self, names: Sequence[str], cancel: threading.Event | None = None) -> CertifiedKey:
        """One certificate for `names` (`apiclub certs issue`), from the issuer they call for.

        ACME certificates are also stored (under the first name), so a server sharing the data
        directory can serve them; local ones are not (the server keeps its own local leaf).

        Raises:
            CertificateError: the names mix local and public ones, or the order failed.
            StorageError: the data directory cannot be written.
        """
        acme = set(self.acme_names)
        public = [name for name in names if name in acme]
        if public and len(public) != len(names):
            local = ", ".join(name for name in names if name not in acme)
            raise CertificateError(
                f"{local} cannot be certified by the ACME server like {', '.join(public)}: "
                "issue local and public names separately"
            )
        if not public:
            return self._local_issuer().issue(names)
        store = CertStore(self.storage, self._acme_issuer().id)
        with store.lock(names[0]):
            certified = self._acme_issuer().issue(names, cancel)
            store.save(names[0], certified)
        return certified

    async def maintain(self, stop: asyncio.Event) -> None:
        """Keep every certificate fresh until `stop` is set; never raises.

        The local leaf (or the given files) is checked every `check_interval`; each ACME
        name at once and then every `store_check_interval`. A failure is logged and retried;
        the current certificate (or stand-in) stays in service meanwhile.
        """
        cancel = threading.Event()
        loops = [self._maintain_acme(managed, stop, cancel) for managed in self._managed.values()]
        if self._local is not None:
            loops.append(self._maintain_local(stop))

        async def cancel_on_stop() -> None:
            await stop.wait()
            cancel.set()  # interrupts an order's polling in its thread

        watcher = asyncio.create_task(cancel_on_stop())
        try:
            await asyncio.gather(*loops)
        finally:
            watcher.cancel()
            if self._acme is not None:
                await asyncio.to_thread(self._acme.close)

    async def _maintain_local(self, stop: asyncio.Event) -> None:
        interval = self.check_interval.total_seconds()
        while not await _stopped(stop, interval):
            try:
                await asyncio.to_thread(self.renew)
                await asyncio.to_thread(self._repair_live)
            except ApiclubError as exc:  # names the file and the fix: no traceback needed
                self._log_renewal_failure(exc)
            except Exception:
                logger.exception("certificate renewal failed; retrying in %s", self.check_interval)

    def _log_renewal_failure(self, exc: ApiclubError) -> None:
        current = self._local
        serving = "nothing"
        if current is not None:
            serial, until = current.leaf.serial_number, current.not_after
            serving = f"serial {serial:x}, valid until {until:%Y-%m-%d %H:%M} UTC"
        logger.error(
            "certificate renewal failed: %s; still serving the certificate in memory (%s); "
            "retrying in %s",
            exc,
            serving,
            self.check_interval,
        )

    async def _maintain_acme(
        self, managed: ManagedCert, stop: asyncio.Event, cancel: threading.Event
    ) -> None:
        interval = self.store_check_interval.total_seconds()
        while not stop.is_set():
            try:
                if await asyncio.to_thread(managed.maintain_once, cancel):
                    self._publish()
                    self._log_serving(managed)
                await asyncio.to_thread(self._repair_live)
            except Exception:  # maintain_once logs its own failures; this is a last resort
                logger.exception("%s: certificate maintenance failed", managed.name)
            wait = interval
            if managed.due():
                wait = min(interval, max(managed.backoff.remaining(), 0.01))
            if await _stopped(stop, wait):
                return

    def _log_serving(self, managed: ManagedCert) -> None:
        if managed.current is None or managed.is_standin:
            return
        logger.info(
            "%s: now serving certificate serial %x, valid until %s (no restart needed)",
            managed.name,
            managed.current.leaf.serial_number,
            f"{managed.current.not_after:%Y-%m-%d %H:%M} UTC",
        )

    def _manage(self, name: str) -> ManagedCert:
        issuer = self._acme_issuer()
        managed = ManagedCert(
            name,
            issuer,
            CertStore(self.storage, issuer.id),
            LocalIssuer(self._ca_or_load(), STANDIN_LIFETIME),
            Backoff(self.retry_initial.total_seconds(), self.retry_max.total_seconds()),
        )
        self._managed[name] = managed
        return managed

    def _acme_issuer(self) -> AcmeIssuer:
        if self._acme is None:
            bundle = self.settings.acme_ca_bundle
            if bundle is not None and not bundle.is_file():
                raise CertificateError(
                    f"APICLUB_ACME_CA_BUNDLE {bundle} is not a file: give the PEM file of the "
                    "CA that signed the ACME server's HTTPS certificate, or unset it"
                )
            self._acme = AcmeIssuer(
                self.storage,
                self.challenges,
                directory=self.settings.acme_directory,
                email=self.settings.acme_email,
                ca_bundle=bundle,
                poll_interval=self.acme_poll_interval,
                listener=self.http01_listener,
            )
        return self._acme

    def _local_issuer(self) -> LocalIssuer:
        return LocalIssuer(self._ca_or_load(), self.leaf_lifetime)

    def _ca_or_load(self) -> LocalCA:
        if self._ca is None:
            self._ca = LocalCA.load_or_create(self.storage)
        return self._ca

    def _served(self) -> list[CertifiedKey]:
        served = [self._local] if self._local is not None else []
        served += [m.current for m in self._managed.values() if m.current is not None]
        return served

    def _publish(self) -> None:
        """Install the current certificates in the SNI map: the local leaf is the default
        (it covers the IPs, which clients never send by SNI), else the first ACME name's."""
        with self._publishing:
            default, *others = self._served()
            if self._map is None:
                self._map = CertMap(default, others)
            else:
                self._map.replace(default, others)
            self._write_live()

    def _write_live(self) -> list[Path]:
        """Keep `certs/live/<name>/` holding what is served for each name, stand-ins included."""
        assert self._map is not None  # noqa: S101
        served = {name: self.certificate_for(name) for name in self.settings.domains}
        return write_live(self.storage, served)

    def _repair_live(self) -> None:
        """Put back live files changed or removed behind our back (see `tls.live`)."""
        with self._publishing:
            for path in self._write_live():
                logger.warning(
                    "%s did not hold the certificate served for its name (overwritten or "
                    "deleted); rewrote it from the one in memory",
                    path,
                )

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
        names = self.local_names
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
            logger.warning("ignoring the stored certificate: %s; issuing a new one", exc)
            return None
        try:
            return CertifiedKey.from_pem(chain, key)
        except (ValueError, TypeError) as exc:
            logger.warning(
                "ignoring the stored certificate %s or its key %s (%s); issuing a new one",
                self.storage.path(LOCAL_CHAIN_KEY),
                self.storage.path(LOCAL_KEY_KEY),
                exc,
            )
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
        if self.settings.acme_agree_tos:
            return
        for name in self.settings.domains:
            if not is_local_name(name):
                logger.warning(
                    "%s looks like a public name, but the ACME server's terms of service are "
                    "not agreed: it gets a local-CA certificate, which browsers will not trust; "
                    "read %s's terms and add --acme-agree-tos (APICLUB_ACME_AGREE_TOS=1) for a "
                    "trusted one",
                    name,
                    self.settings.acme_directory,
                )


async def _stopped(stop: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `stop`; tell whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout)
    return stop.is_set()


def root_cert_path(settings: Settings) -> Path:
    """Where the local CA's root certificate is, creating the CA on first use (`mkcert -CAROOT`).

    Raises:
        CertificateError: the stored CA is corrupt or unreadable.
        StorageError: the data directory cannot be written.
    """
    return LocalCA.load_or_create(FileStorage(settings.data_dir)).root_cert_path
