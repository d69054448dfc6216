"""ARI (RFC 9773) against pebble 2.10: the CA's window decides when a running server renews.

pebble sends no Retry-After on renewalInfo; the proxy in front of it adds one (1 s), as a CA
that wants to be asked again soon would, so the server re-asks within the test's time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apiclub.tls.acme_basics import directory_id
from apiclub.tls.acme_client import ALREADY_REPLACED

from .conftest import NAME, acme_settings, pebble_client, serving_acme
from .https import served_leaf, wait_for_trusted
from .pebble import Pebble
from .ratelimit_proxy import Fault, ratelimit_proxy
from .test_certs_cli import run_cli

pytestmark = pytest.mark.anyio

EXPLANATION = "https://example.com/incident-2026-03-19"
STAMP = "%Y-%m-%d %H:%M:%S UTC"


async def wait_for_log(caplog: pytest.LogCaptureFixture, pattern: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while not (found := re.search(pattern, caplog.text)):
        assert time.monotonic() < deadline, f"{pattern!r} not logged: {caplog.text}"
        await asyncio.sleep(0.05)
    return found.group(0)


def force_window(pebble: Pebble, leaf: x509.Certificate, start: datetime, end: datetime) -> None:
    """Make pebble suggest this window for `leaf` (its management API)."""
    window = {"start": f"{start:%Y-%m-%dT%H:%M:%SZ}", "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"}
    answer = {"suggestedWindow": window, "explanationURL": EXPLANATION}
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    pebble.post("/set-renewal-info/", {"certificate": leaf_pem, "ariResponse": json.dumps(answer)})


def renewing_at(log: str) -> datetime:
    found = re.findall(r"renewing at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)", log)
    assert found, log
    return datetime.strptime(found[-1], STAMP).replace(tzinfo=UTC)


async def test_a_window_in_the_past_makes_the_running_server_renew_with_replaces(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    client = pebble_client(pebble210)
    with ratelimit_proxy(pebble210, Fault("none", None, ari_retry_after=1)) as proxy:
        settings = acme_settings(
            tmp_path, pebble210, acme_directory=proxy.directory, acme_profile="default"
        )
        async with serving_acme(settings) as server:
            first = await wait_for_trusted(server.api_port, client, NAME)
            await wait_for_log(caplog, rf"{NAME}: ARI window .* renewing at")
            assert renewing_at(caplog.text) > datetime.now(UTC) + timedelta(days=30)
            before = len(pebble210.log())
            now = datetime.now(UTC)
            forced = time.monotonic()
            force_window(pebble210, first, now - timedelta(hours=2), now - timedelta(hours=1))
            # Renewed and served over real TLS, trusted by pebble's root, no restart.
            second = await wait_for_trusted(
                server.api_port, client, NAME, differs_from=first.serial_number
            )
            took = time.monotonic() - forced
            assert took < 60, took
    assert f"(see {EXPLANATION})" in caplog.text
    assert re.search(rf"renewing certificate serial {first.serial_number:x} .*due", caplog.text)
    # pebble accepted `replaces` (it names the orders: new one, then the replaced one).
    since = pebble210.log()[before:]
    assert re.search(r'ARI: order "\S+" is a replacement of "\S+"', since), since
    assert "has been marked as replaced" in since
    stored = settings.data_dir / "certs" / directory_id(proxy.directory) / NAME / "fullchain.pem"
    assert x509.load_pem_x509_certificate(stored.read_bytes()).serial_number == second.serial_number


async def test_an_ordinary_window_is_honoured_no_renewal_before_it(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    client = pebble_client(pebble210)
    with ratelimit_proxy(pebble210, Fault("none", None, ari_retry_after=1)) as proxy:
        settings = acme_settings(
            tmp_path, pebble210, acme_directory=proxy.directory, acme_profile="default"
        )
        async with serving_acme(settings) as server:
            first = await wait_for_trusted(server.api_port, client, NAME)
            now = datetime.now(UTC)
            start, end = now + timedelta(days=20), now + timedelta(days=21)
            force_window(pebble210, first, start, end)
            await wait_for_log(caplog, r"ARI window \S+ \S+ - \S+ \S+ UTC \(see")
            at = renewing_at(caplog.text)
            assert start - timedelta(seconds=1) <= at <= end, (at, start, end)
            # Several ARI rounds (1 s each) and store checks (0.2 s) later: still the same.
            fetched = len([e for e in proxy.exchanges if "/renewalInfo/" in e.path])
            await asyncio.sleep(3)
            assert len([e for e in proxy.exchanges if "/renewalInfo/" in e.path]) > fetched
            assert (await served_leaf(server.api_port, client, NAME)) == first
    assert "renewing certificate" not in caplog.text
    # `certs list` (another process) shows the time picked in the window, and why.
    listed = run_cli("certs", "list", "--data-dir", str(settings.data_dir))
    row = next(line for line in listed.stdout.splitlines() if line.startswith(NAME))
    assert f"{at:%Y-%m-%d %H:%M} (the CA's ARI window {start:%Y-%m-%d %H:%M}" in row, row
    assert f"(see {EXPLANATION})" in row


async def test_without_retry_after_renewal_info_is_asked_again_in_6_hours(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = acme_settings(tmp_path, pebble210, acme_profile="default")
    async with serving_acme(settings) as server:
        await wait_for_trusted(server.api_port, pebble_client(pebble210), NAME)
        line = await wait_for_log(caplog, r"next renewal info check [^;\n]+UTC")
    when = datetime.strptime(line.split("check ")[1], STAMP).replace(tzinfo=UTC)
    assert timedelta(hours=5, minutes=59) < when - datetime.now(UTC) <= timedelta(hours=6)


async def test_already_replaced_orders_again_without_replaces(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    client = pebble_client(pebble210)
    fault = Fault(
        "newOrder",
        None,
        problem_type=ALREADY_REPLACED,
        detail="replaced",
        after=1,
        ari_retry_after=1,
    )
    with ratelimit_proxy(pebble210, fault) as proxy:
        settings = acme_settings(
            tmp_path, pebble210, acme_directory=proxy.directory, acme_profile="default"
        )
        async with serving_acme(settings) as server:
            first = await wait_for_trusted(server.api_port, client, NAME)
            before = len(pebble210.log())
            now = datetime.now(UTC)
            force_window(pebble210, first, now - timedelta(hours=2), now - timedelta(hours=1))
            await wait_for_trusted(server.api_port, client, NAME, differs_from=first.serial_number)
    assert "is already replaced; ordering anew" in caplog.text
    assert "is a replacement of" not in pebble210.log()[before:]
    assert "obtaining a certificate failed" not in caplog.text


async def test_a_ca_without_ari_renews_by_the_lifetime(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = acme_settings(tmp_path, pebble)  # Debian 12's pebble 2.4: no renewalInfo
    async with serving_acme(settings) as server:
        leaf = await wait_for_trusted(server.api_port, pebble_client(pebble), NAME)
        await asyncio.sleep(1)  # five rounds
    assert "ARI window" not in caplog.text
    plan = json.loads(
        (
            settings.data_dir / "certs" / directory_id(pebble.directory) / NAME / "renewal.json"
        ).read_text()
    )
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert plan["reason"] == "a third of its lifetime left"
    assert datetime.fromisoformat(plan["renew_at"]) == (
        leaf.not_valid_after_utc - life / 3
    ).replace(microsecond=0)
