"""ACME profiles against pebble 2.10 (default 90 days, shortlived 6 days): chosen by name,
checked at start, and the renewal time follows the lifetime."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import NAME, acme_settings, pebble_client, serving_acme
from .https import wait_for_trusted
from .pebble import Pebble
from .test_certs_cli import acme_flags, run_cli

pytestmark = pytest.mark.anyio


def lifetime(leaf: object) -> timedelta:
    return leaf.not_valid_after_utc - leaf.not_valid_before_utc  # type: ignore[attr-defined]


@pytest.mark.parametrize(("profile", "days"), [("shortlived", 6), ("default", 90)])
async def test_the_named_profile_sets_the_lifetime(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture, profile: str, days: int
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = acme_settings(tmp_path, pebble210, acme_profile=profile)
    async with serving_acme(settings) as server:
        leaf = await wait_for_trusted(server.api_port, pebble_client(pebble210), NAME)
    # pebble's validity is inclusive of its last second.
    assert abs(lifetime(leaf) - timedelta(days=days)) <= timedelta(seconds=1), lifetime(leaf)


def test_a_shortlived_certificate_renews_at_half_life_by_its_lifetime(
    tmp_path: Path, pebble210: Pebble
) -> None:
    # The CLI orders without asking for ARI: the lifetime rule alone decides, recorded for list.
    data = tmp_path / "data"
    flags = [*acme_flags(pebble210, data), "--acme-profile", "shortlived"]
    renewed = run_cli("certs", "renew", *flags)
    assert renewed.returncode == 0, renewed.stderr
    listed = run_cli("certs", "list", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(NAME))
    expires = re.search(r"Pebble Intermediate CA \S+ \(\S+\)\s+(\S+ \S+)", row)
    assert expires is not None, row
    renew = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) \(half of its 6\.0-day life\)", row)
    assert renew is not None, row
    at = datetime.strptime(renew.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    not_after = datetime.strptime(expires.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs((not_after - at) - timedelta(days=3)) <= timedelta(minutes=2), (at, not_after)


def test_a_default_profile_certificate_renews_with_a_third_left(
    tmp_path: Path, pebble210: Pebble
) -> None:
    data = tmp_path / "data"
    flags = [*acme_flags(pebble210, data), "--acme-profile", "default"]
    assert run_cli("certs", "renew", *flags).returncode == 0
    listed = run_cli("certs", "list", "--data-dir", str(data))
    assert "(a third of its lifetime left)" in listed.stdout, listed.stdout
    assert "half of its" not in listed.stdout


def test_an_unknown_profile_fails_the_start_naming_the_offered_ones(
    tmp_path: Path, pebble210: Pebble
) -> None:
    flags = [*acme_flags(pebble210, tmp_path / "data"), "--https-port", "0"]
    started = run_cli("serve", *flags, "--acme-profile", "tlsserver")
    assert started.returncode == 1
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "APICLUB_ACME_PROFILE='tlsserver' is not offered by" in lines[0]
    assert "default (90 days), shortlived (6 days)" in lines[0]
