from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from apiclub.backoff import Backoff
from apiclub.tls import FileStorage, LocalCA
from apiclub.tls.acme_client import AcmeError
from apiclub.tls.ari import Schedule
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import CertStore
from apiclub.tls.issuers import LocalIssuer
from apiclub.tls.managed import ManagedCert
from apiclub.tls.paused import Pause, pause_record

RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial=60, maximum=86400)
    delays = [backoff.fail() for _ in range(12)]
    assert delays[:4] == [60, 120, 240, 480]
    assert delays[-1] == 86400
    assert not backoff.ready()


def test_retry_after_lengthens_the_delay_but_never_past_the_cap() -> None:
    backoff = Backoff(initial=60, maximum=86400)
    assert backoff.fail(retry_after=3600) == 3600
    assert backoff.fail(retry_after=10) == 120  # our own backoff is longer
    assert backoff.fail(retry_after=10**9) == 86400


def test_success_resets_the_backoff() -> None:
    backoff = Backoff(initial=60, maximum=86400)
    backoff.fail()
    backoff.fail()
    backoff.succeed()
    assert backoff.ready()
    assert backoff.fail() == 60


@pytest.mark.parametrize("initial", [0.2, 1.0])
def test_remaining_counts_down(initial: float) -> None:
    backoff = Backoff(initial=initial, maximum=10)
    backoff.fail()
    assert 0 < backoff.remaining() <= initial


class RefusingIssuer:
    """An ACME server that rate-limits every order (the real one is in tests/pebble/)."""

    id = "refusing"

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        raise AcmeError("ordering", RATE_LIMITED, "too many orders", self.retry_after)

    def renewal_info(self, certified: CertifiedKey) -> None:
        return None


def refused_once(storage: FileStorage, local_ca: LocalCA, retry_after: float | None) -> ManagedCert:
    managed = ManagedCert(
        "api.example.com",
        RefusingIssuer(retry_after),
        CertStore(storage, "refusing"),
        LocalIssuer(local_ca, timedelta(days=1)),
        Backoff(initial=60, maximum=86400),
    )
    managed.load()
    assert managed.maintain_once() is False
    assert managed.is_standin
    return managed


@pytest.mark.parametrize(
    ("retry_after", "logged"),
    [
        (3600, "retrying in 1:00:00 as the server asked (Retry-After); serving a local-CA"),
        (10**9, "retrying in 1 day, 0:00:00 as the server asked (Retry-After); serving"),
        (30, "retrying in 0:01:00; serving a local-CA"),  # our own backoff is longer
        (None, "retrying in 0:01:00; serving a local-CA"),
    ],
)
def test_the_log_credits_retry_after_only_when_it_set_the_delay(
    storage: FileStorage,
    local_ca: LocalCA,
    caplog: pytest.LogCaptureFixture,
    retry_after: float | None,
    logged: str,
) -> None:
    managed = refused_once(storage, local_ca, retry_after)
    failure = next(r.getMessage() for r in caplog.records if "failed" in r.message)
    assert f"(attempt 1): {RATE_LIMITED}: too many orders; {logged}" in failure
    assert not managed.backoff.ready()


def test_a_six_day_certificate_is_retried_well_before_it_expires(
    storage: FileStorage, local_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    # A short-lived certificate with 2 days left (a 6-day one at two thirds of its life).
    managed = ManagedCert(
        "api.example.com",
        RefusingIssuer(None),
        CertStore(storage, "refusing"),
        LocalIssuer(local_ca, timedelta(days=1)),
        Backoff(initial=60, maximum=86400),
    )
    certified = local_ca.issue_cert(["api.example.com"], timedelta(days=2))
    managed._adopt(certified)
    managed.schedule = Schedule(certified.not_before, "due for the test")
    delays = []
    for _ in range(14):  # 60 s doubling reaches the 1-day cap after 11 failures
        managed.backoff.not_before = 0.0
        assert managed.maintain_once() is False
        delays.append(managed.backoff.remaining())
    left = 2 * 86400
    assert max(delays) <= left / 4 + 1, delays  # 12 h, not the 1-day maximum
    assert max(delays) > left / 4 - 60, delays
    assert "serving the current certificate meanwhile" in caplog.text


def test_a_retry_after_from_the_ca_is_honoured_even_past_the_cap(
    storage: FileStorage, local_ca: LocalCA
) -> None:
    managed = ManagedCert(
        "api.example.com",
        RefusingIssuer(5 * 86400),
        CertStore(storage, "refusing"),
        LocalIssuer(local_ca, timedelta(days=1)),
        Backoff(initial=60, maximum=10 * 86400),
    )
    certified = local_ca.issue_cert(["api.example.com"], timedelta(days=6))
    managed._adopt(certified)
    managed.schedule = Schedule(certified.not_before, "due")
    assert managed.maintain_once() is False
    assert managed.backoff.remaining() > 4 * 86400


UNPAUSE = "https://portal.letsencrypt.org/sfe/v1/unpause?jwt=x.y.z"


@pytest.mark.parametrize(("key", "paused"), [("same", True), ("changed", False)])
def test_a_pause_recorded_beside_a_stored_certificate_survives_a_restart(
    storage: FileStorage, local_ca: LocalCA, key: str, paused: bool
) -> None:
    store = CertStore(storage, "refusing")
    store.save("api.example.com", local_ca.issue_cert(["api.example.com"], timedelta(days=6)))
    store.save_renewal(
        "api.example.com",
        pause_record(Pause(UNPAUSE, "paused for the test", "same")),
    )

    def start(settings: str) -> ManagedCert:
        managed = ManagedCert(
            "api.example.com",
            RefusingIssuer(None),
            store,
            LocalIssuer(local_ca, timedelta(days=1)),
            Backoff(initial=60, maximum=86400),
        )
        managed.settings_key = settings
        managed.load()
        return managed

    managed = start(key)
    assert (managed.paused is not None) is paused
    assert not managed.is_standin
    assert (store.load_renewal("api.example.com").get("paused") == UNPAUSE) is paused
    if paused:  # and once more: still there after a second restart
        assert start("same").paused is not None
