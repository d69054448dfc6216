"""Corrupt certificate files under a running server: keep serving, say which file, recover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.settings import Settings
from apiclub.tls import CertManager
from tests.processes import run_apiclub, served
from tests.server.conftest import NAMES, local_ca_context, running_server

pytestmark = pytest.mark.anyio

CHECK = timedelta(seconds=0.1)
WAIT = 20.0
GARBAGE = b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"


def start(settings: Settings, **intervals: timedelta) -> Server:
    manager = CertManager(settings, check_interval=CHECK, **intervals)
    socket = bind_socket("127.0.0.1", 0, option="test")
    return Server(settings, api_socket=socket, cert_manager=manager)


async def served_der(port: int, context: ssl.SSLContext) -> bytes:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    return der


async def served_serial(port: int, context: ssl.SSLContext) -> int:
    return int(x509.load_der_x509_certificate(await served_der(port, context)).serial_number)


def unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def eventually(condition: Callable[[], object]) -> None:
    for _ in range(int(WAIT / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail("the condition did not hold within the time limit")


async def test_corrupt_cert_file_keeps_the_served_one_and_a_fixed_file_is_served(
    files_settings: Settings,
    trust_ca: trustme.CA,
    trust_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert_file, key_file = files_settings.cert_file, files_settings.key_file
    assert cert_file is not None and key_file is not None
    caplog.set_level(logging.INFO, logger="apiclub.tls")
    async with running_server(start(files_settings)) as server:
        first = await served_serial(server.api_port, trust_context)
        cert_file.write_bytes(GARBAGE)
        await eventually(lambda: "certificate renewal failed" in caplog.text)
        failure = next(r.getMessage() for r in caplog.records if "renewal failed" in r.message)
        assert f"APICLUB_CERT_FILE {cert_file} holds no PEM certificate" in failure
        assert f"still serving the certificate in memory (serial {first:x}" in failure
        assert await served_serial(server.api_port, trust_context) == first

        leaf = trust_ca.issue_cert(*NAMES)
        key_file.write_bytes(leaf.private_key_pem.bytes())
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        fixed = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number
        await eventually(lambda: f"serial {fixed:x}" in caplog.text)
        assert await served_serial(server.api_port, trust_context) == fixed


async def test_corrupt_live_file_is_rewritten_from_memory(
    local_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    live = local_settings.data_dir / "certs/live/localhost/fullchain.pem"
    caplog.set_level(logging.INFO, logger="apiclub.tls")
    async with running_server(start(local_settings)) as running:
        served = await served_serial(running.api_port, local_ca_context(running))
        live.write_bytes(GARBAGE)
        await eventually(lambda: "rewrote it from the one in memory" in caplog.text)
        assert f"{live} did not hold the certificate served" in caplog.text
        assert x509.load_pem_x509_certificates(live.read_bytes())[0].serial_number == served


async def test_corrupt_stored_leaf_and_root_key_while_serving_renewal_goes_on(
    local_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    data = local_settings.data_dir
    stored = data / "certs/local/fullchain.pem"
    caplog.set_level(logging.INFO, logger="apiclub.tls")
    # A 1 s leaf is always due: every check renews it, reading the stored leaf first.
    server = start(local_settings, leaf_lifetime=timedelta(seconds=1))
    async with running_server(server) as running:
        assert running.cert_manager is not None
        root = x509.load_pem_x509_certificate(running.cert_manager.root_cert_path().read_bytes())
        for path in (stored, data / "ca/root-key.pem"):
            path.write_bytes(GARBAGE)
        await eventually(lambda: f"ignoring the stored certificate {stored}" in caplog.text)
        # Renewal goes on with the root key in memory; the root still signs the leaves. The
        # signature is checked directly: a 1 s leaf may have expired by the handshake.
        renewed = caplog.text.count("renewed certificate")
        await eventually(lambda: caplog.text.count("renewed certificate") > renewed)
        leaf = x509.load_der_x509_certificate(await served_der(running.api_port, unverified()))
        leaf.verify_directly_issued_by(root)
        await eventually(lambda: stored.read_bytes() != GARBAGE)


def test_corrupt_root_key_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with served(tmp_path):
        pass
    key = tmp_path / "ca/root-key.pem"
    good = key.read_bytes()
    key.write_bytes(GARBAGE)
    result = run_apiclub("serve", "--https-port", "0", "--http-port", "0", data_dir=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"{key} is not an unencrypted PEM private key" in line
    assert f"delete {key.parent} to create a new local CA" in line
    # The twin: the same data directory with the key restored starts and serves.
    key.write_bytes(good)
    with served(tmp_path) as server:
        context = ssl.create_default_context(cafile=str(server.root))
        assert asyncio.run(served_serial(server.port, context)) > 0
