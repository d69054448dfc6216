"""One public name's certificate from ACME: stand-in, first issuance, renewal, retries.

Modelled on certmagic's maintenance: at start serve what the store holds, or a short-lived
local-CA stand-in, so the HTTPS listener never waits on the network; then obtain in the
background, retry failures with capped exponential backoff (longer if the server says
`Retry-After`), renew when the CA's renewal window (ARI) says, else by the lifetime (see
`tls.ari`), and adopt a certificate that another process sharing the data directory stored.
Every method blocks; the manager runs them in a thread.
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
from apiclub.tls.ari import (
    ARI_DEFAULT_INTERVAL,
    ARI_MIN_INTERVAL,
    RenewalInfo,
    Schedule,
    lifetime_schedule,
)
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import CertStore, Stamp
from apiclub.tls.issuers import Issuer, LocalIssuer
from apiclub.tls.paused import Pause, pause_from, pause_in, pause_record
from apiclub.units import DAY, HOUR, MINUTE

logger = logging.getLogger("apiclub.tls.acme")

RETRY_INITIAL = 1 * MINUTE
RETRY_MAX = 1 * DAY
STANDIN_LIFETIME = 1 * DAY
ARI_RETRY = 1 * HOUR
"""After a failed renewal-info fetch, when to ask again (the lifetime rule holds meanwhile)."""


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
        self.schedule: Schedule | None = None
        """When `current` is to be renewed and why; None while a stand-in (or nothing) serves."""
        self.ari: RenewalInfo | None = None
        """The CA's last renewal window for `current`, if it offers ARI."""
        self._ari_next: datetime | None = None
        self.ari_min_interval = ARI_MIN_INTERVAL
        """The shortest wait between renewal-info fetches, whatever the CA's Retry-After."""
        self.settings_key = ""
        """Fingerprint of the settings that shape an order; a change ends a CA's pause."""
        self.paused: Pause | None = None
        """The CA paused ordering this name (the zombie rule): no orders until the operator acts."""
        self._stamp: Stamp | None = None

    def load(self, *, standin: bool = True) -> CertifiedKey | None:
        """At start: the stored certificate if still valid for the name, else a stand-in
        (unless `standin` is False: the CLI orders at once instead)."""
        self._stamp = self.store.stamp(self.name)
        paused = pause_in(self.store.load_renewal(self.name), self.settings_key)
        stored = self.store.load(self.name)
        if stored is not None and self._usable(stored):
            self._adopt(stored)
        elif standin:
            self._serve_standin()
        if paused is not None:  # read before `_adopt`, which rewrites renewal.json
            self.paused = paused
            self._record()
            self._log_pause("still paused (recorded before this start)")
        return self.current

    def maintain_once(self, cancel: threading.Event | None = None) -> bool:
        """One round: adopt a certificate another process stored, obtain or renew when due
        and the backoff allows. Never raises; returns whether `current` changed."""
        changed = self._adopt_if_stored_changed()
        if self.paused is not None:  # the zombie rule: no orders until the operator acts
            return self._refresh_standin() or changed
        self.refresh_renewal_info()
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
        """Tell whether an order is needed: serving a stand-in, or the renewal time is here."""
        now = datetime.now(UTC)
        current = self.current
        if current is None or self.is_standin or not current.is_valid_at(now):
            return True
        return self.schedule is not None and now >= self.schedule.at

    def refresh_renewal_info(self) -> None:
        """Ask the CA for `current`'s renewal window when the last answer said to (RFC 9773
        4.3); pick a random time in it. Without ARI, or on a failure, the lifetime decides."""
        now = datetime.now(UTC)
        current = self.current
        if current is None or self.is_standin:
            return
        if self._ari_next is not None and now < self._ari_next:
            return
        try:
            info = self.issuer.renewal_info(current)
        except (CertificateError, StorageError) as exc:
            self._ari_next = now + ARI_RETRY
            logger.warning(
                "%s: fetching renewal info failed (%s); renewing by the lifetime: %s; "
                "asking again in %s",
                self.name,
                exc,
                self._describe(),
                ARI_RETRY,
            )
            return
        if info is None:  # the CA offers no ARI: the lifetime rule stays
            self._ari_next = now + ARI_DEFAULT_INTERVAL
            return
        self._ari_next = info.next_fetch(now, self.ari_min_interval)
        if self.ari is not None and (info.start, info.end) == (self.ari.start, self.ari.end):
            return  # same window: keep the time already picked
        self.ari = info
        self.schedule = Schedule(
            min(info.pick_time(now), current.not_after), f"the CA's {info.describe()}"
        )
        self._record()
        logger.info(
            "%s: %s; renewing at %s; next renewal info check %s",
            self.name,
            info.describe(),
            f"{self.schedule.at:%Y-%m-%d %H:%M:%S} UTC",
            f"{self._ari_next:%Y-%m-%d %H:%M:%S} UTC",
        )

    def forget_renewal_info(self) -> None:
        """Fall back to the lifetime rule (the CA said `alreadyReplaced`, or a new cert)."""
        self.ari = None
        self._ari_next = None
        self.schedule = lifetime_schedule(self.current) if self.current else None
        self._record()

    def _record(self) -> None:
        """Write the plan where `apiclub certs list` (another process) can read it."""
        current, schedule = self.current, self.schedule
        if current is None or self.is_standin or schedule is None:
            return
        state = {
            "serial": f"{current.leaf.serial_number:x}",
            "renew_at": schedule.at.isoformat(timespec="seconds"),
            "reason": schedule.reason,
        }
        origin = getattr(self.issuer, "origin", None)
        directory = origin(current) if origin is not None else getattr(self.issuer, "directory", "")
        if directory:
            state["directory"] = str(directory)
        if self.paused is not None:
            state.update(pause_record(self.paused))
        if self.store.load_renewal(self.name) != state:
            self.store.save_renewal(self.name, state)

    def _describe(self) -> str:
        if self.schedule is None:
            return "now"
        return f"{self.schedule.at:%Y-%m-%d %H:%M} UTC ({self.schedule.reason})"

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
                current = self.current
                # Another process renewed it (a new leaf, not due by its lifetime): adopt that.
                if (
                    stored is not None
                    and self._usable(stored)
                    and (current is None or self.is_standin or stored.leaf != current.leaf)
                    and now < lifetime_schedule(stored).at
                ):
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
                    "%s: renewing certificate serial %x (expires %s; %s) from %s",
                    self.name,
                    current.leaf.serial_number,
                    f"{current.not_after:%Y-%m-%d %H:%M} UTC",
                    "forced" if force else f"due {self._describe()}",
                    self.issuer.id,
                )
            started = time.monotonic()
            replaces = None if current is None or self.is_standin else current
            certified = self.issuer.issue([self.name], cancel, replaces)
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
        self.paused = None  # a new certificate: whoever got it ended the pause
        self.forget_renewal_info()  # a new certificate: ask the CA about it at the next round

    def _serve_standin(self) -> None:
        self.current = self.standin_issuer.issue([self.name])
        self.is_standin = True
        self.schedule = None
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

    def _log_pause(self, why: str) -> None:
        assert self.paused is not None  # noqa: S101
        logger.error(
            "%s: the ACME CA paused orders for this name (%s); no more orders until you act: "
            "fix what made validation fail, unpause at %s, then run `apiclub certs renew "
            "--force` (or restart with changed ACME settings); serving %s meanwhile",
            self.name,
            why,
            self.paused.url,
            "a local-CA stand-in" if self.is_standin else "the current certificate",
        )

    def _retry_cap(self) -> float | None:
        """Our own backoff never waits more than a quarter of the time left before expiry, so a
        6-day certificate renewed at half life still gets several tries (a day-long wait would
        leave three)."""
        current = self.current
        if current is None or self.is_standin:
            return None
        left = (current.not_after - datetime.now(UTC)).total_seconds()
        return max(left / 4, self.backoff.initial)

    def _log_failure(self, exc: Exception) -> None:
        pause = pause_from(exc, self.settings_key)
        if pause is not None:
            self.paused = pause
            record = self.store.load_renewal(self.name)
            record.update(pause_record(pause))
            self.store.save_renewal(self.name, record)
            self._log_pause(f"{pause.detail}")
            return
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        delay = self.backoff.fail(retry_after)
        # Say "as the server asked" only when its Retry-After, not our own backoff, set the delay.
        asked = retry_after is not None and delay == min(retry_after, self.backoff.maximum)
        cap = self._retry_cap()
        if not asked and cap is not None and delay > cap:
            delay = self.backoff.shorten(cap)
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
