"""Print how long `apiclub serve` takes to exit after SIGTERM, by kind of client (a script).

Five TLS clients of one kind are connected, then SIGTERM; the figures are seconds from the
signal to the exit, the exit status and the count the server says it cut. Silent clients are
cut at grace + `launcher.STOP_MARGIN`; polite ones (they answer close_notify) and no clients
at all exit at once. Run:

    .venv/bin/python -m tests.reliability.measure_stop_deadline [RUNS] [GRACE]
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from tests.processes import served
from tests.reliability.test_stop_deadline import (
    CLIENTS,
    CUT,
    answer_close_notify,
    silent_tls_client,
)

KINDS = {
    "handshake-only": b"",
    "half-a-head": b"GET /task/ HTTP/1.1\r\nHost: localhost\r\n",
    "body-stops": b"POST /task/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"name": ',
    "never-reads": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "polite": b"",
    "no clients": b"",
}


def stop_once(kind: str, grace: str) -> tuple[float, int | None, str]:
    """Seconds from SIGTERM to exit, the exit status, and the counts cut (or "-")."""
    with tempfile.TemporaryDirectory() as data, served(Path(data), "--grace-period", grace) as s:
        with ExitStack() as clients:
            count = 0 if kind == "no clients" else CLIENTS
            sockets = [
                clients.enter_context(silent_tls_client(s, KINDS[kind])) for _ in range(count)
            ]
            if kind == "polite":
                for tls in sockets:
                    threading.Thread(target=answer_close_notify, args=(tls,), daemon=True).start()
            start = time.monotonic()
            s.process.send_signal(signal.SIGTERM)
            status = s.process.wait(timeout=60)
            elapsed = time.monotonic() - start
        return elapsed, status, ",".join(CUT.findall(s.log())) or "-"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    grace = sys.argv[2] if len(sys.argv) > 2 else "2"
    print(f"grace period {grace} s, {CLIENTS} clients, {runs} run(s) each")  # noqa: T201
    for kind in KINDS:
        results = [stop_once(kind, grace) for _ in range(runs)]
        seconds = " ".join(f"{elapsed:5.1f}" for elapsed, _, _ in results)
        statuses = " ".join(str(status) for _, status, _ in results)
        cut = " ".join(counts for _, _, counts in results)
        print(f"{kind:15} exit after {seconds} s  status {statuses}  cut {cut}")  # noqa: T201


if __name__ == "__main__":
    main()
