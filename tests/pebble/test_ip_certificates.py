"""IP-address certificates from pebble 2.10 (shortlived only, as at Let's Encrypt), served to
handshakes without SNI; a CA without that profile is a clear error."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from apiclub.settings import TlsMode

from .conftest import acme_settings, pebble_client, serving_acme
from .https import connect, wait_for_trusted
from .pebble import Pebble

pytestmark = pytest.mark.anyio

IP = "127.0.0.1"


def ip_settings(tmp_path: Path, pebble: Pebble) -> object:
    # 127.0.0.1 is loopback: `auto` keeps it on the local CA, so force ACME for the test.
    return acme_settings(tmp_path, pebble, domains=(IP,), tls=TlsMode.ACME)


async def test_an_ip_name_gets_a_shortlived_certificate_for_that_ip(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = ip_settings(tmp_path, pebble210)
    async with serving_acme(settings) as server:  # type: ignore[arg-type]
        # Verified as 127.0.0.1 (Python sends no SNI for an IP literal, RFC 6066 3).
        leaf = await wait_for_trusted(server.api_port, pebble_client(pebble210), IP)
        async with connect(server.api_port, pebble_client(pebble210), IP) as connection:
            assert await connection.get("/") == (200, b'{"status":"ok"}')
        # A handshake with no server name at all gets the same certificate, chain verified.
        no_sni = pebble_client(pebble210)
        no_sni.check_hostname = False
        _, writer = await asyncio.open_connection(IP, server.api_port, ssl=no_sni)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        assert x509.load_der_x509_certificate(der).serial_number == leaf.serial_number
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(IP)]
    assert san.get_values_for_type(x509.DNSName) == []
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert abs(life - timedelta(days=6)) <= timedelta(seconds=1)  # the shortlived profile


async def test_a_ca_without_the_shortlived_profile_is_a_clear_error(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    settings = ip_settings(tmp_path, pebble)  # Debian 12's pebble 2.4: no profiles at all
    async with serving_acme(settings) as server:  # type: ignore[arg-type]
        deadline = time.monotonic() + 20
        while "needs the 'shortlived' profile" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(server.api_port, pebble_client(pebble), IP):
                pass
    assert "which this CA does not offer (profiles: none): use a DNS name" in caplog.text
