"""Retry-After from a real ACME server: pebble behind a proxy that rate-limits one request.

The restraint is read from the proxy's own record of arrival times: after a refusal with
`Retry-After`, nothing may reach the ACME server before the time it named.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from cryptography import x509

from apiclub.backoff import Backoff
from apiclub.tls.acme_client import HTTP_PROBLEM
from apiclub.tls.managed import RETRY_MAX
from tests.processes import run_apiclub

from .conftest import FAST, NAME, acme_settings, local_client, pebble_client, serving_acme
from .https import connect, wait_for_trusted
from .pebble import Pebble
from .ratelimit_proxy import RATE_LIMITED, Fault, RateLimitProxy, ratelimit_proxy

pytestmark = pytest.mark.anyio

RETRY_AFTER = 2  # seconds: long beside FAST's 0.2 s backoff, short enough for a quick test
ASKED = "as the server asked (Retry-After)"


def reason(fault: Fault) -> str:
    """How the log and the CLI name the server's refusal."""
    if fault.problem:
        return f"{RATE_LIMITED}: {fault.detail}"
    status = HTTPStatus(fault.status)
    return f"{HTTP_PROBLEM}: HTTP {status.value} {status.phrase} without a problem document"


async def wait_for_fault(proxy: RateLimitProxy) -> None:
    deadline = time.monotonic() + 30
    while not any(e.injected for e in proxy.exchanges):
        assert time.monotonic() < deadline, f"the fault never fired: {proxy.exchanges}"
        await asyncio.sleep(0.05)


async def issue_through(
    tmp_path: Path, pebble: Pebble, fault: Fault, caplog: pytest.LogCaptureFixture
) -> tuple[RateLimitProxy, list[str]]:
    """Serve NAME with ACME through the proxy until pebble's certificate is served.

    Right after the 429 the stand-in must still be served: with a Retry-After of seconds the
    next attempt is far off. Returns the proxy (its record) and the logged failures.
    """
    caplog.set_level(logging.INFO, logger="apiclub")
    with ratelimit_proxy(pebble, fault) as proxy:
        settings = acme_settings(tmp_path, pebble, acme_directory=proxy.directory)
        async with serving_acme(settings) as server:
            await wait_for_fault(proxy)
            if fault.retry_after:
                async with connect(server.api_port, local_client(settings), NAME) as connection:
                    assert await connection.get("/") == (200, b'{"status":"ok"}')
            leaf = await wait_for_trusted(server.api_port, pebble_client(pebble), NAME)
    issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert str(issuer).startswith("Pebble Intermediate CA")
    assert [e.injected for e in proxy.exchanges].count(True) == 1
    failures = [
        r.getMessage() for r in caplog.records if "obtaining a certificate failed" in r.message
    ]
    return proxy, failures


@pytest.mark.parametrize(
    "fault",
    [
        Fault("newOrder", retry_after=RETRY_AFTER),
        Fault("finalize", retry_after=RETRY_AFTER, http_date=True),
        Fault("newOrder", retry_after=RETRY_AFTER, status=503, problem=False),
    ],
    ids=["newOrder, delay-seconds", "finalize, HTTP-date", "bare 503 from a load balancer"],
)
async def test_a_rate_limited_order_is_retried_no_sooner_than_the_server_asked(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture, fault: Fault
) -> None:
    proxy, failures = await issue_through(tmp_path, pebble, fault, caplog)
    # Nothing, not even the directory, reached the server before the time it named.
    faulted, after = proxy.faulted, proxy.after_fault()
    assert faulted.retry_at is not None
    assert after, "no attempt after the 429"
    assert after[0].arrived >= faulted.retry_at, (faulted, after[0])
    assert any(e.method == "POST" and e.status == 201 for e in after)  # a new order, issued
    assert len(failures) == 1, failures
    assert f"(attempt 1): {reason(fault)};" in failures[0]
    assert re.search(rf"retrying in 0:00:0[23](\.\d+)? {re.escape(ASKED)}", failures[0])
    assert "serving a local-CA stand-in meanwhile" in failures[0]


@pytest.mark.parametrize(
    "fault",
    [Fault("newOrder", retry_after=None), Fault("newOrder", retry_after=0)],
    ids=["no Retry-After", "Retry-After shorter than our backoff"],
)
async def test_without_a_longer_retry_after_our_own_backoff_decides(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture, fault: Fault
) -> None:
    proxy, failures = await issue_through(tmp_path, pebble, fault, caplog)
    # The first delay of the backoff the server runs with (FAST: 0.2 s).
    first_delay = Backoff(FAST["retry_initial"].total_seconds(), RETRY_MAX.total_seconds()).fail()
    faulted, after = proxy.faulted, proxy.after_fault()
    assert after, "no attempt after the 429"
    assert after[0].arrived - faulted.arrived >= first_delay, (faulted, after[0])
    assert len(failures) == 1, failures
    logged = f"{reason(fault)}; retrying in {timedelta(seconds=first_delay)};"
    assert logged in failures[0]
    assert ASKED not in failures[0]


@pytest.mark.parametrize("retry_after", [RETRY_AFTER, None])
def test_the_cli_names_the_limit_and_the_wait_in_one_line(
    tmp_path: Path, pebble: Pebble, retry_after: int | None
) -> None:
    fault = Fault("newOrder", retry_after=retry_after)
    with ratelimit_proxy(pebble, fault) as proxy:
        result = run_apiclub(
            *("certs", "renew", "--domain", NAME, "--http-port", str(pebble.http_port)),
            *("--acme-directory", proxy.directory, "--acme-ca-bundle", str(pebble.ca_bundle)),
            "--acme-agree-tos",
            data_dir=tmp_path / "data",
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("apiclub: error:")]
    assert len(errors) == 1, result.stderr
    assert f"{NAME}: {reason(fault)}" in errors[0]
    wait = "; the server asks to wait 0:00:02 first"
    assert errors[0].endswith(wait) == (retry_after is not None), errors[0]
    assert "Traceback" not in result.stderr
