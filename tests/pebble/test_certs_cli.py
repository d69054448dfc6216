"""`apiclub certs issue|list|renew` as real processes against pebble, alone and beside a server."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apiclub.tls.pem import public_keys_match

from .conftest import NAME, acme_settings, local_client, pebble_client, serving_acme
from .https import served_leaf, wait_for_trusted
from .pebble import Pebble, free_port

SERIAL = re.compile(rf"{re.escape(NAME)}: (renewed|fresh, kept), serial ([0-9a-f]+)")


def acme_flags(pebble: Pebble, data_dir: Path) -> list[str]:
    return [
        *("--data-dir", str(data_dir), "--domain", NAME),
        *("--http-port", str(pebble.http_port), "--acme-directory", pebble.directory),
        *("--acme-ca-bundle", str(pebble.ca_bundle), "--acme-agree-tos"),
    ]


def start_cli(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APICLUB_", "DB_FILE"))}
    return subprocess.Popen(
        [sys.executable, "-m", "apiclub", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    process = start_cli(*args)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_issue_writes_a_chain_that_verifies_and_list_shows_it(
    tmp_path: Path, pebble: Pebble
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    issued = run_cli("certs", "issue", *acme_flags(pebble, data), "--out", str(out))
    assert issued.returncode == 0, issued.stderr
    chain = x509.load_pem_x509_certificates((out / "fullchain.pem").read_bytes())
    root = x509.load_pem_x509_certificate(pebble.roots_file().read_bytes())
    assert len(chain) == 2
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(root)
    key = serialization.load_pem_private_key((out / "privkey.pem").read_bytes(), None)
    assert public_keys_match(chain[0], key)
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600
    assert f"{chain[0].serial_number:x}" in issued.stdout

    listed = run_cli("certs", "list", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(NAME))
    assert "Pebble Intermediate CA" in row
    assert re.search(r"\s18\d\d\.\d\s", row)  # pebble 2.4 issues for five years


def test_issue_from_an_unreachable_acme_server_fails_in_one_line(
    tmp_path: Path, pebble: Pebble
) -> None:
    flags = acme_flags(pebble, tmp_path / "data")
    flags[flags.index("--acme-directory") + 1] = f"https://127.0.0.1:{free_port()}/dir"
    result = run_cli("certs", "issue", *flags, "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("apiclub: error:")]
    assert len(errors) == 1
    assert "apiclub:connection: ConnectionError" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_list_of_an_empty_store_says_so(tmp_path: Path) -> None:
    result = run_cli("certs", "list", "--data-dir", str(tmp_path / "data"))
    assert (result.returncode, result.stdout) == (0, f"no certificates in {tmp_path}/data/certs\n")


@pytest.mark.anyio
async def test_renew_beside_a_running_server_is_validated_and_served_by_it(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    settings = acme_settings(tmp_path, pebble)
    caplog.set_level(logging.INFO, logger="apiclub")
    async with serving_acme(settings) as server:
        first = await wait_for_trusted(server.api_port, pebble_client(pebble), NAME)
        flags = acme_flags(pebble, settings.data_dir)
        # Not due: nothing is ordered, the server keeps its certificate.
        kept = await asyncio.to_thread(run_cli, "certs", "renew", *flags)
        assert kept.returncode == 0, kept.stderr
        assert SERIAL.search(kept.stdout).groups() == ("fresh, kept", f"{first.serial_number:x}")  # type: ignore[union-attr]
        # Forced: the CLI cannot bind port 80, the server answers its token from the store.
        renewed = await asyncio.to_thread(run_cli, "certs", "renew", "--force", *flags)
        assert renewed.returncode == 0, renewed.stderr
        assert "HTTP-01: not listening on port" in renewed.stderr
        state, serial = SERIAL.search(renewed.stdout).groups()  # type: ignore[union-attr]
        assert (state, int(serial, 16)) != ("renewed", first.serial_number)
        assert state == "renewed"
        leaf = await wait_for_trusted(
            server.api_port, pebble_client(pebble), NAME, differs_from=first.serial_number
        )
        assert leaf.serial_number == int(serial, 16)
    assert "answered ACME challenge token" in caplog.text
    assert "serving the certificate renewed in the store by another process" in caplog.text


@pytest.mark.anyio
async def test_renew_fails_cleanly_when_nobody_answers_at_the_validated_port(
    tmp_path: Path, pebble: Pebble
) -> None:
    settings = acme_settings(tmp_path, pebble)
    async with serving_acme(settings, http_port=0) as server:
        # The server's port 80 is not where pebble validates: the CLI leaves the challenge
        # to it, and the validation finds nobody.
        flags = acme_flags(pebble, settings.data_dir)
        flags[flags.index("--http-port") + 1] = str(server.redirect_port)
        result = await asyncio.to_thread(run_cli, "certs", "renew", *flags)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("apiclub: error")]
        assert len(errors) == 1
        assert "urn:ietf:params:acme:error:connection" in errors[0]
        standin = await served_leaf(server.api_port, local_client(settings), NAME)
        assert "apiclub local CA" in standin.issuer.rfc4514_string()


@pytest.mark.parametrize("force", [False, True])
def test_two_processes_never_order_the_same_certificate_at_once(
    tmp_path: Path, pebble: Pebble, force: bool
) -> None:
    flags = acme_flags(pebble, tmp_path / "data")
    extra = ["--force"] if force else []
    processes = [start_cli("certs", "renew", *extra, *flags) for _ in range(2)]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], results
    serials = [SERIAL.search(stdout).group(2) for stdout, _ in results]  # type: ignore[union-attr]
    logs = "".join(stderr for _, stderr in results)
    if not force:
        # The second waits for the lock, then finds the first one's certificate.
        assert serials[0] == serials[1]
        assert len(re.findall(rf"{NAME}: obtained certificate", logs)) == 1
        assert "using the certificate another process obtained" in logs
    else:
        # Forced: both order, one after the other (the lock), each its own certificate.
        assert serials[0] != serials[1]
        assert len(re.findall(rf"{NAME}: obtained certificate", logs)) == 2
