"""External Account Binding against pebble 2.10 configured to require it (as ZeroSSL, Google
Trust Services and Sectigo do): the right key registers and issues; none, or a wrong one, is
a clear error; the HMAC key never reaches the log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import MISSING_210, NAME, acme_settings, missing, pebble_client, serving_acme
from .https import wait_for_trusted
from .pebble import Pebble, free_port, pebble_210, run_pebble

pytestmark = pytest.mark.anyio

KID = "kid-1"
HMAC_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # pebble's example
WRONG_KEY = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    binaries = pebble_210()
    if binaries is None:
        missing("pebble 2.10", MISSING_210)
    config = {
        "externalAccountBindingRequired": True,
        "externalAccountMACKeys": {KID: HMAC_KEY},
        "profiles": {"default": {"description": "90 days", "validityPeriod": 90 * 86400}},
    }
    with run_pebble(tmp_path_factory.mktemp("pebble-eab"), free_port(), binaries, **config) as p:
        yield p


async def served_or_failed(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture, **eab: str
) -> tuple[object | None, str]:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = acme_settings(tmp_path, pebble, acme_profile="default", **eab)
    async with serving_acme(settings) as server:
        if eab.get("acme_eab_hmac_key") == HMAC_KEY:
            return await wait_for_trusted(server.api_port, pebble_client(pebble), NAME), ""
        deadline = time.monotonic() + 20
        while "obtaining a certificate failed" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
    failure = next(r.getMessage() for r in caplog.records if "obtaining a cert" in r.message)
    return None, failure


async def test_the_right_key_binds_the_account_and_issues(
    tmp_path: Path, eab_pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    leaf, _ = await served_or_failed(
        tmp_path, eab_pebble, caplog, acme_eab_kid=KID, acme_eab_hmac_key=HMAC_KEY
    )
    assert leaf is not None
    assert HMAC_KEY not in caplog.text
    assert "registered ACME account" in caplog.text
    # Bound once: the registration is stored per directory and reused, the key not needed.
    assert len(list((tmp_path / "data" / "acme").glob("*/account.json"))) == 1


async def test_no_key_is_a_clear_error(
    tmp_path: Path, eab_pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    _, failure = await served_or_failed(tmp_path, eab_pebble, caplog)
    assert "error:externalAccountRequired" in failure, failure
    assert "this CA requires External Account Binding: set APICLUB_ACME_EAB_KID" in failure
    assert not list((tmp_path / "data" / "acme").glob("*/account.json"))


async def test_a_wrong_key_is_a_clear_error(
    tmp_path: Path, eab_pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    _, failure = await served_or_failed(
        tmp_path, eab_pebble, caplog, acme_eab_kid=KID, acme_eab_hmac_key=WRONG_KEY
    )
    assert "error:unauthorized" in failure, failure
    assert "the CA refused the External Account Binding: check that APICLUB_ACME_EAB_KID" in failure
    assert WRONG_KEY not in caplog.text
    assert not list((tmp_path / "data" / "acme").glob("*/account.json"))
