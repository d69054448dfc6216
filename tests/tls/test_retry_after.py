"""`Retry-After` as ACME servers send it: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apiclub.tls.acme_client import retry_after_seconds

# RFC 9110 5.6.7's example instant, Sun, 06 Nov 1994 08:49:37 GMT, as time.time() says it.
EXAMPLE = 784111777.0


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 10 hours off UTC: a date read as local time would be off by as much."""
    monkeypatch.setenv("TZ", "Pacific/Honolulu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # IMF-fixdate, the preferred form
        ("Sun, 06 Nov 1994 08:51:37 GMT", 120.0),
        ("Sunday, 06-Nov-94 08:51:37 GMT", 120.0),  # obsolete RFC 850 form
        ("Sun Nov  6 08:51:37 1994", 120.0),  # obsolete asctime form, no zone: UTC
        ("Sun, 06 Nov 1994 08:40:00 GMT", 0.0),  # already past: now
    ],
)
def test_both_forms_are_understood(far_from_utc: None, value: str, seconds: float) -> None:
    assert retry_after_seconds(value, EXAMPLE) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "1e3", "inf", "nan", "²"])
def test_anything_else_is_ignored_so_our_own_backoff_decides(value: str | None) -> None:
    assert retry_after_seconds(value, EXAMPLE) is None
