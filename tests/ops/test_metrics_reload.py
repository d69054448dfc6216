"""The counts survive a SIGHUP reload: the parent's admin listener sums every generation.

Workers are replaced at a reload, but their sample files stay in the parent's multiprocess
directory, so what the old generation counted is still in /metrics after it has gone.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.ops.helpers import served
from tests.ops.test_prometheus import SENT, send_requests

pytestmark = pytest.mark.timeout(180)
SAMPLE = re.compile(
    r'^apiclub_http_requests_total\{method="([^"]+)",route="([^"]+)",status="([^"]+)"\} (\S+)$'
)
RELOAD_TIMEOUT = 60.0  # seconds


def counts(metrics: str) -> Counter[tuple[str, str, str]]:
    found: Counter[tuple[str, str, str]] = Counter()
    for line in metrics.splitlines():
        if (sample := SAMPLE.match(line)) is not None:
            found[(sample[1], sample[2], sample[3])] = int(float(sample[4]))
    return +found


def wait_for(text: str, log: object) -> None:
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while time.monotonic() < deadline:
        if text in log():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"no {text!r} in the log within {RELOAD_TIMEOUT:.0f} s")


@pytest.mark.parametrize("workers", [1, 2])
def test_counts_carry_across_a_reload(tmp_path: Path, workers: int) -> None:
    with served(tmp_path / "data", "--workers", str(workers)) as api:
        send_requests(api)
        status, before = api.admin("/metrics")
        assert status == 200
        assert counts(before) == SENT

        api.process.send_signal(signal.SIGHUP)
        wait_for("generation 1 serving", api.log)
        assert api.admin("/readyz")[0] == 200
        send_requests(api)

        status, after = api.admin("/metrics")
        assert status == 200
        assert counts(after) == SENT + SENT
        # The live gauge forgets the old workers: nothing is in flight now.
        in_flight = re.findall(
            r"^apiclub_http_requests_in_flight(?:\{[^}]*\})? (\S+)$", after, re.M
        )
        assert in_flight and all(float(value) == 0 for value in in_flight)
