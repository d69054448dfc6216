"""When to renew: the CA's renewal window (ARI, RFC 9773), else a share of the lifetime.

A CA with ARI suggests a window per certificate; the client picks a uniformly random time
inside it (spreading renewals, section 4.2), renews at once when the window lies in the past
(how Let's Encrypt asks every client to renew after an incident), and asks again when the
answer's `Retry-After` says (6 hours by default, section 4.3.2). Without ARI, or when the CA
says the certificate is already replaced, the lifetime decides: a third left for ordinary
certificates, half of it for short-lived ones (under 10 days, as Let's Encrypt asks).

This module knows nothing of the `acme` package: the client fetches, this decides.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from apiclub.tls.certified import RENEW_WHEN_REMAINING, CertifiedKey
from apiclub.units import DAY, HOUR, MINUTE

ARI_DEFAULT_INTERVAL = 6 * HOUR
"""How often renewal info is fetched when the CA's answer has no Retry-After (RFC 9773 4.3.2)."""
ARI_MIN_INTERVAL = 1 * MINUTE
ARI_MAX_INTERVAL = 1 * DAY
"""Bounds on the CA's Retry-After: never hammer it, never go a day without asking."""
SHORT_LIVED = 10 * DAY
"""Certificates living less than this renew at half their life."""


def ari_cert_id(leaf: x509.Certificate) -> str:
    """The certificate's ARI identifier (RFC 9773 4.1): base64url of the authority key id,
    a dot, base64url of the serial number's DER bytes (unpadded both).

    Raises:
        ValueError: the certificate has no authority key identifier.
    """
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("no authority key identifier: not a CA-issued certificate") from exc
    if aki.key_identifier is None:
        raise ValueError("the authority key identifier has no key id")
    serial = leaf.serial_number
    # DER INTEGER contents: big-endian two's complement, a leading zero if the top bit is set.
    serial_der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64(aki.key_identifier)}.{_b64(serial_der)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class RenewalInfo:
    """One renewalInfo answer: the suggested window and what the CA said with it."""

    start: datetime
    end: datetime
    explanation_url: str | None
    retry_after: float | None
    """Seconds until the CA wants to be asked again (its Retry-After), or None."""

    def next_fetch(self, now: datetime, minimum: timedelta = ARI_MIN_INTERVAL) -> datetime:
        """When to ask again: the CA's Retry-After, bounded, else every 6 hours."""
        wait = ARI_DEFAULT_INTERVAL
        if self.retry_after is not None:
            wait = timedelta(seconds=self.retry_after)
        return now + min(max(wait, minimum), ARI_MAX_INTERVAL)

    def pick_time(self, now: datetime, rng: random.Random | None = None) -> datetime:
        """A uniformly random time in the window; `now` if the window is over (RFC 9773 4.2)."""
        if self.end <= now:
            return now
        start = max(self.start, now)
        spread = (self.end - start).total_seconds()
        return start + timedelta(seconds=(rng or random).uniform(0, spread))

    def describe(self) -> str:
        """ "ARI window 2026-12-03 10:00 - 2026-12-05 10:00 UTC (see URL)"."""
        text = f"ARI window {self.start:%Y-%m-%d %H:%M} - {self.end:%Y-%m-%d %H:%M} UTC"
        return f"{text} (see {self.explanation_url})" if self.explanation_url else text


@dataclass(frozen=True)
class Schedule:
    """When a certificate is to be renewed, and why (for the log and `certs list`)."""

    at: datetime
    reason: str


def lifetime_schedule(certified: CertifiedKey) -> Schedule:
    """Renewal by the lifetime alone: half life under 10 days, else a third left."""
    return validity_schedule(certified.not_before, certified.not_after)


def validity_schedule(not_before: datetime, not_after: datetime) -> Schedule:
    """`lifetime_schedule` from the validity dates alone."""
    life = not_after - not_before
    if life < SHORT_LIVED:
        days = life.total_seconds() / 86400
        return Schedule(not_before + life / 2, f"half of its {days:.1f}-day life")
    return Schedule(not_after - life * RENEW_WHEN_REMAINING, "a third of its lifetime left")
