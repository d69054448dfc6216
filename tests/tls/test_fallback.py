"""The order of CAs and each one's backoff (the real fallback against pebble is in
tests/pebble/test_fallback.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta

import pytest

from apiclub.backoff import Backoff
from apiclub.tls import LocalCA
from apiclub.tls.acme_client import AcmeError
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.fallback import FallbackIssuer


class CA:
    """A CA that issues from the local CA, or refuses while `down`."""

    def __init__(self, name: str, local_ca: LocalCA, down: bool) -> None:
        self.directory = f"https://{name}/dir"
        self.id = name
        self.local_ca = local_ca
        self.down = down
        self.calls = 0
        self.replaces: list[CertifiedKey | None] = []

    def issue(
        self,
        names: Sequence[str],
        cancel: threading.Event | None = None,
        replaces: CertifiedKey | None = None,
    ) -> CertifiedKey:
        self.calls += 1
        self.replaces.append(replaces)
        if self.down:
            raise AcmeError("ordering", "apiclub:connection", f"{self.id} is down", None)
        return self.local_ca.issue_cert(names, timedelta(days=1))


def fallback(local_ca: LocalCA, *down: bool) -> tuple[FallbackIssuer, list[CA]]:
    cas = [CA(f"ca{i}", local_ca, d) for i, d in enumerate(down)]
    backoffs = [Backoff(initial=3600, maximum=86400) for _ in cas]
    return FallbackIssuer(cas, backoffs), cas  # type: ignore[arg-type]


def test_the_next_ca_issues_when_the_first_fails_and_the_first_rests(local_ca: LocalCA) -> None:
    issuer, (first, second) = fallback(local_ca, True, False)
    certified = issuer.issue(["api.example.com"])
    assert (first.calls, second.calls) == (1, 1)
    assert issuer.origin(certified) == second.directory
    issuer.issue(["api.example.com"], replaces=certified)
    assert (first.calls, second.calls) == (1, 2)  # the first is in its own backoff
    assert second.replaces[-1] is certified  # `replaces` goes to the CA that issued it
    issuer.routes[0].backoff.not_before = 0.0  # its backoff ended
    first.down = False
    renewed = issuer.issue(["api.example.com"], replaces=certified)
    assert issuer.origin(renewed) == first.directory
    assert first.replaces[-1] is None  # never another CA's certificate id


def test_every_ca_failing_raises_the_last_error(local_ca: LocalCA) -> None:
    issuer, _ = fallback(local_ca, True, True)
    with pytest.raises(AcmeError, match="ca1 is down"):
        issuer.issue(["api.example.com"])
    with pytest.raises(AcmeError, match="every ACME CA failed recently") as raised:
        issuer.issue(["api.example.com"])
    assert raised.value.retry_after is not None and raised.value.retry_after > 3000
