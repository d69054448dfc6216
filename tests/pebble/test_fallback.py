"""Two ACME directories in order: when the first CA fails, the certificate comes from the next."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from cryptography import x509

from apiclub.tls.acme_basics import directory_id

from .conftest import NAME, acme_settings, pebble_client, serving_acme
from .https import served_leaf, wait_for_trusted
from .pebble import Pebble, free_port
from .test_certs_cli import run_cli

pytestmark = pytest.mark.anyio


async def test_the_first_ca_unreachable_the_certificate_comes_from_the_second(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    unreachable = f"https://127.0.0.1:{free_port()}/dir"
    both = f"{unreachable},{pebble210.directory}"
    settings = acme_settings(tmp_path, pebble210, acme_directory=both, acme_profile="default")
    async with serving_acme(settings) as server:
        leaf = await wait_for_trusted(server.api_port, pebble_client(pebble210), NAME)
        assert await served_leaf(server.api_port, pebble_client(pebble210), NAME) == leaf
    issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert str(issuer).startswith("Pebble Intermediate CA")
    assert f"trying the next ACME CA, {pebble210.directory}, after {unreachable} failed" in (
        caplog.text
    )
    assert "apiclub:connection" in caplog.text
    # Each CA has its own account: only the one that answered registered.
    accounts = tmp_path / "data" / "acme"
    assert (accounts / directory_id(pebble210.directory) / "account.json").exists()
    assert not (accounts / directory_id(unreachable) / "account.json").exists()
    # Stored in the first CA's folder; `certs list` names the CA that issued it.
    listed = run_cli("certs", "list", "--data-dir", str(tmp_path / "data"))
    row = next(line for line in listed.stdout.splitlines() if line.startswith(NAME))
    assert "Pebble Intermediate CA" in row and f"({pebble210.directory})" in row, row
    assert f"/certs/{directory_id(unreachable)}/{NAME}/" in row


async def test_with_only_the_unreachable_ca_nothing_is_issued(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    unreachable = f"https://127.0.0.1:{free_port()}/dir,https://127.0.0.1:{free_port()}/dir"
    settings = acme_settings(tmp_path, pebble210, acme_directory=unreachable)
    async with serving_acme(settings):
        deadline = time.monotonic() + 20
        while "obtaining a certificate failed (attempt 2)" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
    assert "trying the next ACME CA" in caplog.text
    assert not list((tmp_path / "data" / "certs").glob("127.0.0.1*/*/fullchain.pem"))
