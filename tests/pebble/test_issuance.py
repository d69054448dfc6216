"""ACME against a real server (pebble): first issuance, renewal, failures, all while serving."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from apiclub.tls import FileStorage, LocalCA
from apiclub.tls.acme_client import directory_id
from apiclub.tls.certstore import CertStore

from .conftest import NAME, acme_settings, local_client, pebble_client, serving_acme
from .https import connect, served_leaf, wait_for_trusted
from .pebble import Pebble, free_port

pytestmark = pytest.mark.anyio


def issuer_cn(leaf: x509.Certificate) -> str:
    return str(leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


async def wait_for_log(caplog: pytest.LogCaptureFixture, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while len(re.findall(pattern, caplog.text)) < count:
        assert time.monotonic() < deadline, f"{pattern!r} not logged {count}x: {caplog.text}"
        await asyncio.sleep(0.05)


async def test_first_certificate_arrives_while_a_stand_in_is_served(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    settings = acme_settings(tmp_path, pebble)
    caplog.set_level(logging.INFO, logger="apiclub")
    started = time.monotonic()
    async with serving_acme(settings) as server:
        # Up at once, on a local-CA stand-in that a client trusting pebble's root refuses.
        assert time.monotonic() - started < 1.0
        standin = await served_leaf(server.api_port, local_client(settings), NAME)
        assert issuer_cn(standin).startswith("apiclub local CA")
        leaf = await wait_for_trusted(server.api_port, pebble_client(pebble), NAME)
        assert issuer_cn(leaf).startswith("Pebble Intermediate CA")
        async with connect(server.api_port, pebble_client(pebble), NAME) as connection:
            assert await connection.get("/") == (200, b'{"status":"ok"}')
    assert "serving a stand-in certificate from the local CA" in caplog.text
    assert re.search(rf"{NAME}: obtained certificate serial [0-9a-f]+ from CN=Pebble", caplog.text)
    # Stored next to its key, leaf + intermediate; account and keys private.
    data = settings.data_dir
    folder = data / "certs" / directory_id(pebble.directory) / NAME
    chain = x509.load_pem_x509_certificates((folder / "fullchain.pem").read_bytes())
    assert chain[0].serial_number == leaf.serial_number
    assert len(chain) == 2
    chain[0].verify_directly_issued_by(chain[1])
    account = data / "acme" / directory_id(pebble.directory)
    for private in (folder / "privkey.pem", account / "account-key.pem", account / "account.json"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private


@pytest.mark.parametrize("broken", ["challenge unreachable", "ACME server unreachable"])
async def test_a_failing_order_is_logged_and_retried_while_the_stand_in_serves(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    if broken == "challenge unreachable":
        # Our port-80 listener is elsewhere: pebble's validation finds nobody at httpPort.
        settings, http_port = acme_settings(tmp_path, pebble), 0
        problem = "urn:ietf:params:acme:error:connection"
    else:
        directory = f"https://127.0.0.1:{free_port()}/dir"
        settings, http_port = acme_settings(tmp_path, pebble, acme_directory=directory), 0
        problem = "apiclub:connection: ConnectionError"
    caplog.set_level(logging.INFO, logger="apiclub")
    async with serving_acme(settings, http_port=http_port) as server:
        await wait_for_log(caplog, rf"{NAME}: obtaining a certificate failed", count=3)
        async with connect(server.api_port, local_client(settings), NAME) as connection:
            assert await connection.get("/") == (200, b'{"status":"ok"}')
        with pytest.raises(ssl.SSLCertVerificationError):
            await served_leaf(server.api_port, pebble_client(pebble), NAME)
    failures = [
        r.getMessage() for r in caplog.records if "obtaining a certificate failed" in r.message
    ]
    assert all(problem in message for message in failures), failures
    assert all(r.name == "apiclub.tls.acme" for r in caplog.records if "failed" in r.message)
    # Exponential backoff: 0.2 s, 0.4 s, 0.8 s ...
    delays = [re.search(r"retrying in (\S+);", m).group(1) for m in failures[:3]]  # type: ignore[union-attr]
    assert delays == ["0:00:00.200000", "0:00:00.400000", "0:00:00.800000"]
    assert "serving a local-CA stand-in meanwhile" in failures[0]


def store_due_certificate(settings_data: Path, pebble: Pebble, lifetime: timedelta) -> int:
    """Put a local-CA certificate for NAME where the ACME certificate is kept."""
    storage = FileStorage(settings_data)
    certified = LocalCA.load_or_create(storage).issue_cert([NAME], lifetime)
    CertStore(storage, directory_id(pebble.directory)).save(NAME, certified)
    return int(certified.leaf.serial_number)


async def test_renewal_is_swapped_in_without_dropping_open_connections(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    settings = acme_settings(tmp_path, pebble)
    # 30 s left of a 90 s life (leaves are backdated 60 s): past two thirds, so due.
    old_serial = store_due_certificate(settings.data_dir, pebble, timedelta(seconds=30))
    caplog.set_level(logging.INFO, logger="apiclub")
    async with serving_acme(settings) as server:
        both = local_client(settings)
        both.load_verify_locations(cafile=str(pebble.roots_file()))
        async with connect(server.api_port, both, NAME) as old:
            assert old.leaf.serial_number == old_serial
            assert (await old.get("/"))[0] == 200
            new = await wait_for_trusted(server.api_port, pebble_client(pebble), NAME)
            assert new.serial_number != old_serial
            assert await old.get("/") == (200, b'{"status":"ok"}')  # the old session lives on
            assert old.leaf.serial_number == old_serial
    assert f"{NAME}: now serving certificate serial {new.serial_number:x}" in caplog.text
    assert "stand-in" not in caplog.text


async def test_a_fresh_stored_certificate_is_kept_and_nothing_is_ordered(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    settings = acme_settings(tmp_path, pebble)
    serial = store_due_certificate(settings.data_dir, pebble, timedelta(days=30))
    caplog.set_level(logging.INFO, logger="apiclub")
    async with serving_acme(settings) as server:
        await asyncio.sleep(1.0)  # five store checks
        leaf = await served_leaf(server.api_port, local_client(settings), NAME)
    assert leaf.serial_number == serial
    assert "ordering" not in caplog.text
    # No account was registered (its key is made when the directory is first read, for ARI).
    assert not list((settings.data_dir / "acme").glob("*/account.json"))
