from __future__ import annotations

import pytest

from apiclub.tls.managed import Backoff


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
