"""Start, probe, measure and stop the processes of a stack: ports, readiness, RSS, logs.

Every process writes to a log file, never to a pipe: a busy server's access log would fill a
pipe nobody reads and stall the server being measured.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SECONDS = 1.0
START_TIMEOUT = 60 * SECONDS
STOP_TIMEOUT = 15 * SECONDS
PROBE_INTERVAL = 0.01 * SECONDS
PROBE_TIMEOUT = 2 * SECONDS
KIB = 1024


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on now (all held until all are chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def spawn(
    argv: Sequence[str], *, log: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so the whole tree can be signalled), output to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(  # noqa: S603 (argv is built by the benchmark, never a shell)
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal `process` (SIGTERM, or nginx's graceful SIGQUIT), wait, then kill its group."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def get_verified(port: int, context: ssl.SSLContext, *, host: str = "localhost") -> int:
    """The status of `GET /` over HTTPS to 127.0.0.1:`port`, its chain verified for `host`."""
    address = ("127.0.0.1", port)
    with (
        socket.create_connection(address, timeout=PROBE_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        return response.status


def wait_verified(
    port: int,
    root: Path,
    processes: Sequence[subprocess.Popen[bytes]],
    *,
    log: Path,
) -> float:
    """Poll until `GET /` answers 200, verified against `root`; return when (monotonic).

    The root is read at each attempt: a stack with its own new CA writes it while starting.

    Raises:
        RuntimeError: a process exited, or no answer came within START_TIMEOUT; with its log.
    """
    deadline = time.monotonic() + START_TIMEOUT
    last = "no attempt"
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited {process.returncode}:\n{tail(log)}")
        try:
            status = get_verified(port, ssl.create_default_context(cafile=str(root)))
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                return time.monotonic()
            last = f"HTTP {status}"
        time.sleep(PROBE_INTERVAL)
    message = f"no verified 200 on port {port} in {START_TIMEOUT} s ({last}):\n{tail(log)}"
    raise RuntimeError(message)


def tree_rss(pids: Sequence[int]) -> int:
    """Resident bytes of these processes and all their descendants, summed (0 for the gone).

    Read from /proc (Linux, as nginx and wrk here): VmRSS of each, children from each thread's
    `children` file.
    """
    total, seen, todo = 0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        proc = Path(f"/proc/{pid}")
        with contextlib.suppress(OSError):
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * KIB
            for children in proc.glob("task/*/children"):
                todo.extend(int(child) for child in children.read_text().split())
    return total


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"
