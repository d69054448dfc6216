"""Print how long /readyz takes to answer 503 after SIGTERM while a request is in flight.

For each run: `apiclub serve --metrics-port P` (1 or 2 workers), a POST whose body is half
sent, SIGTERM, then /readyz asked in a loop until it answers 503; the figure is ms from the
signal to that answer. Run:

    .venv/bin/python -m tests.ops.measure_readiness [RUNS]
"""

from __future__ import annotations

import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.ops.helpers import served
from tests.ops.test_readiness import BODY, probe, start_slow_post


def one(workers: int) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        served(Path(tmp) / "data", "--workers", str(workers), "--grace-period", "10") as api,
    ):
        slow = start_slow_post(api)
        time.sleep(0.3)
        api.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while probe(api.admin_port, "/readyz") == 200:
            pass
        took = time.monotonic() - signalled
        slow.sendall(BODY[5:])
        slow.recv(65536)
        slow.close()
        api.process.wait(30)
        return 1000 * took


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for workers in (1, 2):
        figures = [one(workers) for _ in range(runs)]
        sys.stdout.write(
            f"--workers {workers}: SIGTERM to /readyz 503 in {statistics.median(figures):.1f} ms "
            f"median, {max(figures):.1f} ms max over {runs} runs\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
