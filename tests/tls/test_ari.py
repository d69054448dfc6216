"""Renewal timing: the CA's ARI window, else the lifetime (half life under 10 days)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from apiclub.tls.ari import RenewalInfo, validity_schedule

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def info(start: timedelta, end: timedelta, retry_after: float | None = None) -> RenewalInfo:
    return RenewalInfo(NOW + start, NOW + end, "https://example.com/why", retry_after)


def test_the_time_is_spread_over_the_whole_window() -> None:
    window = info(timedelta(days=1), timedelta(days=2))
    rng = random.Random(7)
    picks = [window.pick_time(NOW, rng) for _ in range(200)]
    assert all(window.start <= at <= window.end for at in picks)
    assert max(picks) - min(picks) > timedelta(hours=20)  # not all at the start


def test_a_window_in_the_past_means_now() -> None:
    assert info(-timedelta(hours=2), -timedelta(hours=1)).pick_time(NOW) == NOW


def test_a_window_already_open_picks_between_now_and_its_end() -> None:
    window = info(-timedelta(hours=5), timedelta(hours=1))
    assert all(NOW <= window.pick_time(NOW) <= window.end for _ in range(50))


def test_renewal_info_is_asked_again_when_the_ca_says_within_bounds() -> None:
    assert info(timedelta(0), timedelta(1)).next_fetch(NOW) == NOW + timedelta(hours=6)
    assert info(timedelta(0), timedelta(1), 600).next_fetch(NOW) == NOW + timedelta(minutes=10)
    assert info(timedelta(0), timedelta(1), 1).next_fetch(NOW) == NOW + timedelta(minutes=1)
    assert info(timedelta(0), timedelta(1), 10**7).next_fetch(NOW) == NOW + timedelta(days=1)


def test_short_lived_certificates_renew_at_half_life() -> None:
    six_days = validity_schedule(NOW, NOW + timedelta(days=6))
    assert six_days.at == NOW + timedelta(days=3)
    assert six_days.reason == "half of its 6.0-day life"
    lets_encrypt = validity_schedule(NOW, NOW + timedelta(hours=160))
    assert lets_encrypt.at == NOW + timedelta(hours=80)


def test_ordinary_certificates_renew_with_a_third_left() -> None:
    ninety = validity_schedule(NOW, NOW + timedelta(days=90))
    assert ninety.at == NOW + timedelta(days=60)
    assert ninety.reason == "a third of its lifetime left"
    ten = validity_schedule(NOW, NOW + timedelta(days=10))  # the boundary: not short-lived
    assert ten.reason == "a third of its lifetime left"
