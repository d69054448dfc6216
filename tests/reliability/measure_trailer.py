"""Print what a 64 MiB chunked trailer on port 80 costs the server, and HTTPS latency meanwhile.

A real `apiclub serve` (local CA, both listeners on free ports); HTTPS `GET /` latency is
sampled before and while one client streams a trailer field of up to 64 MiB to port 80. The
figures: bytes the client got to send before the server answered or closed, the server's CPU
seconds, and the latency median and maximum. Run:

    .venv/bin/python -m tests.reliability.measure_trailer
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.processes import start_apiclub

TRAILER = 64 * 1024 * 1024
PIECE = 64 * 1024
HEAD = b"POST /t HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Pad: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latencies(client: httpx.Client, url: str, seconds: float) -> list[float]:
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        client.get(url).raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
        time.sleep(0.02)
    return samples


def stream_trailer(port: int, result: dict[str, object]) -> None:
    sent, start = 0, time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        try:
            sock.sendall(HEAD)
            while sent < TRAILER:
                sock.sendall(b"y" * PIECE)
                sent += PIECE
            sock.sendall(b"\r\n\r\n")
            result["answer"] = sock.recv(64).split(b"\r\n")[0].decode()
        except OSError as exc:
            result["answer"] = f"closed ({exc.__class__.__name__})"
    result["sent"], result["seconds"] = sent, time.monotonic() - start


def main() -> None:
    https, http = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryFile("w+") as log:
        process = start_apiclub(
            "serve", "--https-port", str(https), "--http-port", str(http),
            data_dir=Path(data), stderr=log,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            process.stdout.readline()  # the banner: serving
            context = ssl.create_default_context(cafile=Path(data) / "ca/root.pem")
            url = f"https://localhost:{https}/"
            with httpx.Client(verify=context) as client:
                before = latencies(client, url, 2)
                cpu = cpu_seconds(process.pid)
                result: dict[str, object] = {}
                attacker = threading.Thread(target=stream_trailer, args=(http, result))
                attacker.start()
                during = latencies(client, url, 3)
                attacker.join(timeout=120)
                used = cpu_seconds(process.pid) - cpu
            for label, samples in (("before", before), ("during", during)):
                print(  # noqa: T201
                    f"HTTPS GET / {label:6}: median {statistics.median(samples):6.1f} ms  "
                    f"max {max(samples):7.1f} ms  ({len(samples)} requests)"
                )
            print(  # noqa: T201
                f"trailer: sent {result.get('sent', 0):,} bytes of {TRAILER:,} in "
                f"{result.get('seconds', 0):.2f} s, answer {result.get('answer')!r}; "
                f"server CPU meanwhile {used:.2f} s"
            )
        finally:
            process.terminate()
            process.communicate(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
