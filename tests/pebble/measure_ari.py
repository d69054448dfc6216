"""Print issuance and ARI renewal times against pebble 2.10 (a script, not a test).

Issuance: `apiclub certs renew` as a real process on a new data directory, per profile.
ARI renewal: a running server (in this process, as the tests run it) whose certificate's
window pebble moves into the past; the time until a new certificate is served over TLS. It
runs twice: with the tests' fast intervals (store check 0.2 s, the proxy's Retry-After 1 s)
and with the production ones (store check 30 s, Retry-After 60 s, the 1-minute floor). Run:

    .venv/bin/python -m tests.pebble.measure_ari [RUNS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apiclub.server.launcher import Server
from apiclub.server.sockets import bind_socket
from apiclub.tls import CertManager
from tests.server.conftest import running_server

from .conftest import FAST, NAME, acme_settings, pebble_client
from .https import wait_for_trusted
from .measure_issuance import OBTAINED
from .pebble import PROFILES, Pebble, free_port, pebble_210, run_pebble
from .ratelimit_proxy import Fault, ratelimit_proxy
from .test_ari import force_window
from .test_certs_cli import acme_flags, run_cli


def issue(pebble: Pebble, workdir: Path, profile: str) -> tuple[float, float]:
    started = time.monotonic()
    flags = [*acme_flags(pebble, workdir / "data"), "--acme-profile", profile]
    result = run_cli("certs", "renew", *flags)
    wall = time.monotonic() - started
    found = OBTAINED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"certs renew failed: {result.stderr}")
    return wall, float(found.group(1))


async def renew_by_ari(pebble: Pebble, workdir: Path, fast: bool) -> float:
    retry_after = 1 if fast else 60
    with ratelimit_proxy(pebble, Fault("none", None, ari_retry_after=retry_after)) as proxy:
        settings = acme_settings(
            workdir, pebble, acme_directory=proxy.directory, acme_profile="default"
        )
        manager = CertManager(settings, **FAST) if fast else CertManager(settings)
        server = Server(
            settings,
            api_socket=bind_socket("127.0.0.1", 0, option="measure"),
            redirect_socket=bind_socket("127.0.0.1", pebble.http_port, option="measure"),
            cert_manager=manager,
        )
        client = pebble_client(pebble)
        async with running_server(server) as running:
            first = await wait_for_trusted(running.api_port, client, NAME)
            now = datetime.now(UTC)
            forced = time.monotonic()
            force_window(pebble, first, now - timedelta(hours=2), now - timedelta(hours=1))
            deadline = time.monotonic() + 180
            while True:
                try:
                    leaf = await wait_for_trusted(
                        running.api_port, client, NAME, differs_from=first.serial_number
                    )
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            assert leaf.serial_number != first.serial_number
            return time.monotonic() - forced


def main(runs: int) -> None:
    binaries = pebble_210()
    if binaries is None:
        raise SystemExit("pebble 2.10 missing: run .ci/run, or set APICLUB_PEBBLE_210")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with run_pebble(root / "pebble", free_port(), binaries, profiles=PROFILES) as pebble:
            for profile in ("default", "shortlived"):
                results = [issue(pebble, root / f"{profile}{i}", profile) for i in range(runs)]
                walls, orders = zip(*results, strict=True)
                print(  # noqa: T201
                    f"issuance, profile {profile}: order median {statistics.median(orders):.1f} s "
                    f"{orders}, whole process median {statistics.median(walls):.2f} s"
                )
            fast = [asyncio.run(renew_by_ari(pebble, root / f"ari{i}", True)) for i in range(runs)]
            print(  # noqa: T201
                f"ARI renewal (test intervals): window moved -> new certificate served: median "
                f"{statistics.median(fast):.1f} s {tuple(round(f, 1) for f in fast)}"
            )
            slow = asyncio.run(renew_by_ari(pebble, root / "ari-prod", False))
            print(f"ARI renewal (production intervals, Retry-After 60 s): {slow:.1f} s")  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
