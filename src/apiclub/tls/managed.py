"""One public name's certificate from ACME: stand-in, first issuance, renewal, retries.

Modelled on certmagic's maintenance: at start serve what the store holds, or a short-lived
local-CA stand-in, so the HTTPS listener never waits on the network; then obtain in the
background, retry failures with capped exponential backoff (longer if the server says
`Retry-After`), renew once a third of the lifetime is left, and adopt a certificate that
another process sharing the data directory stored. Every method blocks; the manager runs
them in a thread.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from apiclub.backoff import Backoff
from apiclub.errors import CertificateError, StorageError
from apiclub.observe import emit
from apiclub.tls.acme_basics import AcmeError
from apiclub.tls.certified import DAYS, MINUTES, CertifiedKey
from apiclub.tls.certstore import CertStore, Stamp
from apiclub.tls.issuers import Issuer, LocalIssuer

logger = logging.getLogger("apiclub.tls.acme")

RETRY_INITIAL = 1 * MINUTES
RETRY_MAX = 1 * DAYS
STANDIN_LIFETIME = 1 * DAYS


class ManagedCert:
    """The certificate served for one name, obtained from `issuer` and kept in `store`."""

    def __init__(
        self,
        name: str,
        issuer: Issuer,
        store: CertStore,
        standin: LocalIssuer,
        backoff: Backoff,
    ) -> None:
        self.name = name
        self.issuer = issuer
        self.store = store
        self.standin_issuer = standin
        self.backoff = backoff
        self.current: CertifiedKey | None = None
        self.is_standin = False
        self._stamp: Stamp | None = None

    def load(self, *, standin: bool = True) -> CertifiedKey | None:
        """At start: the stored certificate if still valid for the name, else a stand-in
        (unless `standin` is False: the CLI orders at once instead)."""
        self._stamp = self.store.stamp(self.name)
        stored = self.store.load(self.name)
        if stored is not None and self._usable(stored):
            self._adopt(stored)
        elif standin:
            self._serve_standin()
        return self.current

    def maintain_once(self, cancel: threading.Event | None = None) -> bool:
        """One round: adopt a certificate another process stored, obtain or renew when due
        and the backoff allows. Never raises; returns whether `current` changed."""
        changed = self._adopt_if_stored_changed()
        if not self.due():
            return changed
        if not self.backoff.ready():
            return self._refresh_standin() or changed
        attempt, started = time.time(), time.monotonic()
        try:
            self.obtain(cancel=cancel)
        except (CertificateError, StorageError) as exc:
            self._log_failure(exc)
            self._report(attempt, started, ok=False)
            return self._refresh_standin() or changed
        self.backoff.succeed()
        self._report(attempt, started, ok=True)
        return True

    def _report(self, attempt: float, started: float, *, ok: bool) -> None:
        """Tell the observers (the metrics) how this attempt went (`apiclub.observe`)."""
        emit(
            "cert.renewal",
            name=self.name,
            ok=ok,
            failures=self.backoff.failures,
            seconds=time.monotonic() - started,
            at=attempt,
        )

    def due(self) -> bool:
        """Tell whether an order is needed: serving a stand-in, or a third of the life left."""
        return (
            self.current is None or self.is_standin or self.current.needs_renewal(datetime.now(UTC))
        )

    def obtain(self, *, force: bool = False, cancel: threading.Event | None = None) -> bool:
        """Order a certificate under the store's lock, unless another process just did.

        Returns whether a new certificate was ordered (False: adopted the stored one).

        Raises:
            AcmeError, CertificateError: the order failed.
            StorageError: the certificate cannot be stored.
        """
        with self.store.lock(self.name):
            if not force:
                stored = self.store.load(self.name)
                now = datetime.now(UTC)
                if stored is not None and self._usable(stored) and not stored.needs_renewal(now):
                    self._stamp = self.store.stamp(self.name)
                    if self.current is None or stored.leaf != self.current.leaf:
                        logger.info(
                            "%s: using the certificate another process obtained, serial %x",
                            self.name,
                            stored.leaf.serial_number,
                        )
                        self._adopt(stored)
                    return False
            current = self.current
            if current is None or self.is_standin:
                logger.info("%s: ordering a certificate from %s", self.name, self.issuer.id)
            else:
                logger.info(
                    "%s: renewing certificate serial %x (expires %s%s) from %s",
                    self.name,
                    current.leaf.serial_number,
                    f"{current.not_after:%Y-%m-%d %H:%M} UTC",
                    "; forced" if force else "",
                    self.issuer.id,
                )
            started = time.monotonic()
            certified = self.issuer.issue([self.name], cancel)
            self.store.save(self.name, certified)
            self._stamp = self.store.stamp(self.name)
        logger.info(
            "%s: obtained certificate serial %x from %s in %.1f s, valid until %s",
            self.name,
            certified.leaf.serial_number,
            certified.leaf.issuer.rfc4514_string(),
            time.monotonic() - started,
            f"{certified.not_after:%Y-%m-%d %H:%M} UTC",
        )
        self._adopt(certified)
        return True

    def _adopt_if_stored_changed(self) -> bool:
        stamp = self.store.stamp(self.name)
        if stamp is None or stamp == self._stamp:
            return False
        stored = self.store.load(self.name)
        if stored is None or not self._usable(stored):
            return False  # perhaps caught between key and chain writes: look again next round
        self._stamp = stamp
        if self.current is not None and stored.leaf == self.current.leaf:
            return False
        logger.info(
            "%s: serving the certificate renewed in the store by another process, serial %x",
            self.name,
            stored.leaf.serial_number,
        )
        self._adopt(stored)
        return True

    def _usable(self, certified: CertifiedKey) -> bool:
        return certified.covers(self.name) and certified.is_valid_at(datetime.now(UTC))

    def _adopt(self, certified: CertifiedKey) -> None:
        self.current = certified
        self.is_standin = False

    def _serve_standin(self) -> None:
        self.current = self.standin_issuer.issue([self.name])
        self.is_standin = True
        logger.warning(
            "%s: serving a stand-in certificate from the local CA (valid %.0f h) until the ACME "
            "certificate arrives; clients that do not trust the local root will refuse it",
            self.name,
            STANDIN_LIFETIME.total_seconds() / 3600,
        )

    def _refresh_standin(self) -> bool:
        current = self.current
        if self.is_standin and current is not None and current.needs_renewal(datetime.now(UTC)):
            self._serve_standin()
            return True
        return False

    def _log_failure(self, exc: Exception) -> None:
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        delay = self.backoff.fail(retry_after)
        # Say "as the server asked" only when its Retry-After, not our own backoff, set the delay.
        asked = retry_after is not None and delay == min(retry_after, self.backoff.maximum)
        serving = "a local-CA stand-in" if self.is_standin else "the current certificate"
        reason = f"{exc.problem_type}: {exc.detail}" if isinstance(exc, AcmeError) else str(exc)
        logger.error(
            "%s: obtaining a certificate failed (attempt %d): %s; retrying in %s%s; "
            "serving %s meanwhile",
            self.name,
            self.backoff.failures,
            reason,
            timedelta(seconds=round(delay, 1)),
            " as the server asked (Retry-After)" if asked else "",
            serving,
        )
