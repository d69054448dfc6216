"""Print how long a first certificate takes from pebble (a script, not a test).

Each run is `apiclub certs renew` as a real process on a new data directory (account key,
registration, order, HTTP-01 on its own port-80 listener, finalize) with the production
polling interval, against Debian's pebble on loopback. Run:

    .venv/bin/python -m tests.pebble.measure_issuance [RUNS]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .pebble import free_port, run_pebble

NAME = "api.example.com"
OBTAINED = re.compile(rf"{re.escape(NAME)}: obtained certificate serial \w+ from .* in ([\d.]+) s")


def issue_once(
    directory: str, ca_bundle: Path, http_port: int, workdir: Path
) -> tuple[float, float]:
    """One `certs renew`: (process wall time, the order time the log reports), in seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "apiclub", "certs", "renew", "--domain", NAME),
            *("--data-dir", str(workdir / "data")),
            *("--http-port", str(http_port), "--acme-directory", directory),
            *("--acme-ca-bundle", str(ca_bundle), "--acme-agree-tos"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.monotonic() - started
    found = OBTAINED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"certs renew failed ({result.returncode}): {result.stderr}")
    return wall, float(found.group(1))


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        http_port = free_port()
        with run_pebble(Path(tmp) / "pebble", http_port) as pebble:
            results = [
                issue_once(pebble.directory, pebble.ca_bundle, http_port, Path(tmp) / f"run{i}")
                for i in range(runs)
            ]
    walls, orders = zip(*results, strict=True)
    print(f"runs: {runs}")  # noqa: T201
    print(f"order (logged 'obtained ... in'): median {statistics.median(orders):.1f} s, {orders}")  # noqa: T201
    print(f"whole process (start to exit):   median {statistics.median(walls):.2f} s")  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
