"""The zombie rule: a CA that pauses an account+name (Let's Encrypt's problem document with an
unpause link, served by the proxy in front of pebble) stops our orders until the operator acts."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from .conftest import NAME, acme_settings, pebble_client, serving_acme
from .https import served_leaf
from .pebble import Pebble
from .ratelimit_proxy import Fault, RateLimitProxy, ratelimit_proxy
from .test_certs_cli import acme_flags, run_cli

pytestmark = pytest.mark.anyio

UNPAUSE = "https://portal.letsencrypt.org/sfe/v1/unpause?jwt=eyJhbGciOiJIUzI1NiJ9.test.sig"
# Let's Encrypt's wording (https://letsencrypt.org/docs/rate-limits/).
PAUSED = (
    f"Your account is temporarily prevented from requesting certificates for {NAME} and "
    f"possibly others. Please visit: {UNPAUSE}"
)


def orders(proxy: RateLimitProxy) -> int:
    return sum(1 for e in proxy.exchanges if e.method == "POST" and e.injected)


async def until(condition: object, caplog: pytest.LogCaptureFixture, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, caplog.text
        await asyncio.sleep(0.05)


async def test_a_paused_name_is_not_retried_until_certs_renew_force(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    fault = Fault("newOrder", retry_after=None, detail=PAUSED, times=2)
    with ratelimit_proxy(pebble, fault) as proxy:
        settings = acme_settings(tmp_path, pebble, acme_directory=proxy.directory)
        async with serving_acme(settings):
            await until(lambda: "paused orders for this name" in caplog.text, caplog)
            # FAST retries every 0.2 s; a paused name gets none.
            await asyncio.sleep(2)
            assert orders(proxy) == 1
        assert f"unpause at {UNPAUSE}, then run `apiclub certs renew --force`" in caplog.text
        listed = run_cli("certs", "list", "--data-dir", str(settings.data_dir))
        assert f"PAUSED {NAME}: the ACME CA paused orders for it; unpause at {UNPAUSE}" in (
            listed.stdout
        )
        # A restart with the same settings stays paused.
        caplog.clear()
        async with serving_acme(settings):
            await until(lambda: "still paused" in caplog.text, caplog)
            await asyncio.sleep(1)
            assert orders(proxy) == 1
        # The operator unpaused (the proxy's second fault is the CA still refusing once, then
        # it lets orders through): --force orders anyway, and the pause is gone.
        flags = [*acme_flags(pebble, settings.data_dir), "--acme-directory", proxy.directory]
        refused = run_cli("certs", "renew", "--force", *flags)
        assert refused.returncode == 1 and UNPAUSE in refused.stderr, refused.stderr
        renewed = run_cli("certs", "renew", "--force", *flags)
        assert renewed.returncode == 0, renewed.stderr
        assert "PAUSED" not in run_cli("certs", "list", "--data-dir", str(settings.data_dir)).stdout
        async with serving_acme(settings) as server:
            leaf = await served_leaf(server.api_port, pebble_client(pebble), NAME)
        assert str(leaf.issuer.rfc4514_string()).find("Pebble") >= 0


async def test_changed_settings_end_the_pause(
    tmp_path: Path, pebble210: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    with ratelimit_proxy(pebble210, Fault("newOrder", None, detail=PAUSED, times=1)) as proxy:
        paused = acme_settings(
            tmp_path, pebble210, acme_directory=proxy.directory, acme_profile="default"
        )
        async with serving_acme(paused):
            await until(lambda: "paused orders for this name" in caplog.text, caplog)
        # Same CA, same store folder, another profile: the operator acted; order at once.
        changed = acme_settings(
            tmp_path, pebble210, acme_directory=proxy.directory, acme_profile="shortlived"
        )
        async with serving_acme(changed) as server:
            await until_trusted(server.api_port, pebble210)
        assert orders(proxy) == 1
    assert "still paused" not in caplog.text


async def until_trusted(port: int, pebble: Pebble) -> object:
    from .https import wait_for_trusted

    return await wait_for_trusted(port, pebble_client(pebble), NAME)


async def test_an_ordinary_rate_limit_is_retried_not_paused(
    tmp_path: Path, pebble: Pebble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apiclub")
    with ratelimit_proxy(pebble, Fault("newOrder", None, times=2)) as proxy:
        settings = acme_settings(tmp_path, pebble, acme_directory=proxy.directory)
        async with serving_acme(settings) as server:
            await until_trusted(server.api_port, pebble)
        assert orders(proxy) == 2
    assert "paused" not in caplog.text
