"""The one object the server and the CLI use for certificates: obtain at start, serve, renew.

Local names (localhost, IPs, private suffixes) share one local-CA leaf; each public name has
its own ACME certificate (`ManagedCert`). Start-up problems raise (`prepare`), and start-up
never waits on the network: a public name is served from the store or by a local stand-in
until its certificate arrives. Background work logs and retries (`maintain`), and a failed
renewal keeps serving the current certificate, as certmagic's maintenance loop does.

This module decides which source serves which name and wires the pieces: the default leaf's
source (`LocalSource`, `FileSource`), the certificates in service (`CertCache`), and the
background loop (`Maintenance`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from apiclub.backoff import Backoff
from apiclub.errors import CertificateError, ConfigError
from apiclub.names import is_local_name, is_public_ip
from apiclub.settings import Settings, TlsMode
from apiclub.tls import keys
from apiclub.tls.acme_basics import POLL_INTERVAL, AcmeError
from apiclub.tls.ari import ARI_MIN_INTERVAL
from apiclub.tls.cache import CertCache
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import CertStore
from apiclub.tls.challenges import ChallengeStore
from apiclub.tls.fallback import FallbackIssuer
from apiclub.tls.file_source import FileSource
from apiclub.tls.issuers import AcmeIssuer, Http01Listener, LocalIssuer
from apiclub.tls.local_ca import LEAF_LIFETIME, LocalCA
from apiclub.tls.local_source import LocalSource
from apiclub.tls.maintenance import RENEW_CHECK_INTERVAL, STORE_CHECK_INTERVAL, Maintenance
from apiclub.tls.managed import RETRY_INITIAL, RETRY_MAX, STANDIN_LIFETIME, ManagedCert
from apiclub.tls.paused import settings_key
from apiclub.tls.source import LeafSource
from apiclub.tls.storage import FileStorage

logger = logging.getLogger("apiclub.tls")


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
        ari_min_interval: timedelta = ARI_MIN_INTERVAL,
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
        self.ari_min_interval = ari_min_interval
        self.http01_listener = http01_listener
        self.storage = FileStorage(settings.data_dir)
        self.challenges = ChallengeStore(self.storage)
        self._ca: LocalCA | None = None
        self._acme: AcmeIssuer | FallbackIssuer | None = None
        self._source: LeafSource | None = None
        self._cache = CertCache(self.storage, settings.domains)

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
        return tuple(
            name for name in self.settings.domains if not is_local_name(name) or is_public_ip(name)
        )

    def prepare(self) -> None:
        """Obtain the certificates (stored, issued locally or read from files), build the map.

        Never waits on an ACME server: a public name without a stored certificate gets a
        short-lived local-CA stand-in, replaced by `maintain` when the real one arrives.

        Raises:
            CertificateError: a certificate or key cannot be created, read or used.
            StorageError: the data directory cannot be written.
        """
        if self.mode is TlsMode.FILES:
            self._source = self._file_source()
            self._cache.local = self._source.obtain()
        else:
            if self.mode is TlsMode.AUTO:
                self._warn_public_names()
            self._ca = LocalCA.load_or_create(self.storage)
            if self.local_names:
                self._source = LocalSource(
                    self.storage, self._ca, self.local_names, self.leaf_lifetime
                )
                self._cache.local = self._source.obtain()
            if self.acme_names and self.settings.acme_profile is not None:
                self._check_profile(self.settings.acme_profile)
            for name in self.acme_names:
                managed = self._manage(name)
                managed.load()
        self._cache.publish()
        for certified in self._cache.served():
            logger.info(
                "serving certificate for %s, serial %x, valid until %s",
                ", ".join(certified.names),
                certified.leaf.serial_number,
                f"{certified.not_after:%Y-%m-%d %H:%M} UTC",
            )

    def server_context(self) -> ssl.SSLContext:
        """The listener's context; it picks the certificate per handshake from the live map."""
        return self._cache.server_context()

    def current_certificate(self) -> x509.Certificate:
        """The leaf served by default (no SNI, or an unknown name) right now."""
        return self._cache.current_certificate()

    def certificate_for(self, name: str) -> CertifiedKey:
        """The certificate a handshake naming `name` gets right now."""
        return self._cache.certificate_for(name)

    def root_cert_path(self) -> Path | None:
        """The local CA's root certificate file, or None when certificates come from files."""
        return self._ca.root_cert_path if self._ca is not None else None

    def renew(self, force: bool = False) -> bool:
        """Renew the local leaf past 2/3 of its life (or if `force`), or reload changed files.

        Returns whether a new certificate is now being served.
        """
        current, source = self._cache.local, self._source
        if current is None or source is None:
            return False
        certified = source.refresh(current, force=force)
        if certified is None or certified.leaf.serial_number == current.leaf.serial_number:
            return False
        self._cache.local = certified
        self._cache.publish()
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
            managed = self._cache.managed.get(name)
            if managed is None:  # not serving: no stand-in, just what the store holds
                managed = self._manage(name)
                managed.load(standin=False)
            if managed.paused is not None and not force:
                logger.warning(
                    "%s: paused by the ACME CA (unpause at %s): not ordering; "
                    "`apiclub certs renew --force` orders anyway once unpaused",
                    name,
                    managed.paused.url,
                )
                continue
            if (force or managed.due()) and managed.obtain(force=force, cancel=cancel):
                renewed.append(name)
        if self._cache.published:
            self._cache.publish()
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
        """Keep every certificate fresh until `stop` is set; never raises (see `Maintenance`).

        The local leaf (or the given files) is checked every `check_interval`; each ACME
        name at once and then every `store_check_interval`. A failure is logged and retried;
        the current certificate (or stand-in) stays in service meanwhile.
        """
        loop = Maintenance(
            self._cache,
            self.renew,
            check_interval=self.check_interval,
            store_check_interval=self.store_check_interval,
        )
        try:
            await loop.run(stop)
        finally:
            if self._acme is not None:
                await asyncio.to_thread(self._acme.close)

    def _manage(self, name: str) -> ManagedCert:
        issuer = self._acme_issuer()
        managed = ManagedCert(
            name,
            issuer,
            CertStore(self.storage, issuer.id),
            LocalIssuer(self._ca_or_load(), STANDIN_LIFETIME),
            self._backoff(),
        )
        managed.ari_min_interval = self.ari_min_interval
        settings = self.settings
        managed.settings_key = settings_key(
            settings.acme_directories, settings.acme_profile, settings.acme_eab_kid, name
        )
        self._cache.managed[name] = managed
        return managed

    def _acme_issuer(self) -> AcmeIssuer | FallbackIssuer:
        if self._acme is None:
            bundle = self.settings.acme_ca_bundle
            if bundle is not None and not bundle.is_file():
                raise CertificateError(
                    f"APICLUB_ACME_CA_BUNDLE {bundle} is not a file: give the PEM file of the "
                    "CA that signed the ACME server's HTTPS certificate, or unset it"
                )
            issuers = [
                AcmeIssuer(
                    self.storage,
                    self.challenges,
                    directory=directory,
                    email=self.settings.acme_email,
                    ca_bundle=bundle,
                    poll_interval=self.acme_poll_interval,
                    listener=self.http01_listener,
                    profile=self.settings.acme_profile,
                    eab=self.settings.acme_eab,
                )
                for directory in self.settings.acme_directories
            ]
            if len(issuers) == 1:
                self._acme = issuers[0]
            else:
                self._acme = FallbackIssuer(issuers, [self._backoff() for _ in issuers])
        return self._acme

    def _backoff(self) -> Backoff:
        return Backoff(self.retry_initial.total_seconds(), self.retry_max.total_seconds())

    def _check_profile(self, profile: str) -> None:
        """A profile the CA does not offer fails the start (one line naming those it does);
        an unreachable CA only delays the check to the first order, which then fails."""
        try:
            offered = self._acme_issuer().profiles()
        except AcmeError as exc:
            logger.warning("cannot check APICLUB_ACME_PROFILE=%s now: %s", profile, exc)
            return
        if profile not in offered:
            listed = ", ".join(f"{name} ({text})" for name, text in offered.items()) or "none"
            raise ConfigError(
                f"APICLUB_ACME_PROFILE={profile!r} is not offered by "
                f"{self._acme_issuer().directory}: its profiles are {listed}; "
                "pick one of them, or unset it for the CA's default"
            )

    def _local_issuer(self) -> LocalIssuer:
        return LocalIssuer(self._ca_or_load(), self.leaf_lifetime)

    def _ca_or_load(self) -> LocalCA:
        if self._ca is None:
            self._ca = LocalCA.load_or_create(self.storage)
        return self._ca

    def _file_source(self) -> FileSource:
        cert_file, key_file = self.settings.cert_file, self.settings.key_file
        if cert_file is None or key_file is None:  # Settings refuses this; keeps mypy exact
            raise ConfigError("APICLUB_TLS=files needs APICLUB_CERT_FILE and APICLUB_KEY_FILE")
        return FileSource(cert_file, key_file, self.settings.domains)

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


def root_cert_path(settings: Settings) -> Path:
    """Where the local CA's root certificate is, creating the CA on first use (`mkcert -CAROOT`).

    Raises:
        CertificateError: the stored CA is corrupt or unreadable.
        StorageError: the data directory cannot be written.
    """
    return LocalCA.load_or_create(FileStorage(settings.data_dir)).root_cert_path


def root_key_path(settings: Settings) -> Path:
    """Where the local CA's private key is (0600; `apiclub ca trust` checks it)."""
    return FileStorage(settings.data_dir).path(keys.ROOT_KEY)
