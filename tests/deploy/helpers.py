"""Run the deploy files as they ship: render.sh, the nginx entrypoint, tools found or skipped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools import missing, require_file, require_tool

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "deploy" / "nginx"
DOMAINS = ("apiclub.com", "api.apiclub.com")
NGINX = "/usr/sbin/nginx"
START_TIMEOUT = 10.0


def tool(name: str, *, package: str) -> str:
    """The path of `name` in the venv or on PATH, or skip (fail in CI) naming `package`."""
    return require_tool(name, package)


def dev_tool(name: str) -> str:
    """A tool from the locked dev extra (always there after `make install`)."""
    venv_tool = Path(sys.executable).parent / name
    if not venv_tool.exists():
        missing(name, "make install (it is in the dev extra)")
    return str(venv_tool)


def need_nginx() -> None:
    require_file(NGINX, "nginx")
    require_tool("envsubst", "gettext-base")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on right now (bound to port 0, then released).

    All are held until all are chosen: one socket at a time, the kernel may hand out the
    same port twice.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    """A port nobody listens on right now."""
    return free_ports(1)[0]


def clean_env(**values: str) -> dict[str, str]:
    """PATH plus `values`: no APICLUB_* or NGINX_* of the developer's shell leaks in."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", **values}


def render(out: Path, **values: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/nginx/render.sh OUT with exactly `values` as its environment."""
    require_tool("envsubst", "gettext-base")  # render.sh fills the templates with it
    return subprocess.run(
        [str(NGINX_DIR / "render.sh"), str(out)],
        env=clean_env(**values),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass
class Nginx:
    """A running deploy/nginx/entrypoint.sh (nginx in the foreground, the reload watcher)."""

    process: subprocess.Popen[bytes]
    https_port: int
    http_port: int
    prefix: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def nginx_env(
    data_dir: Path,
    upstream_port: int | Sequence[int],
    *,
    https_port: int,
    http_port: int,
    prefix: Path,
) -> dict[str, str]:
    """The environment compose gives the nginx container, with loopback ports and paths.

    Several upstream ports are several API replicas, in that order in the upstream block.
    """
    ports = [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
    return clean_env(
        APICLUB_DOMAINS=",".join(DOMAINS),
        NGINX_PREFIX=str(prefix),
        NGINX_HTTPS_LISTEN=f"127.0.0.1:{https_port}",
        NGINX_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        NGINX_UPSTREAM=",".join(f"127.0.0.1:{port}" for port in ports),
        NGINX_CERT_FILE=str(data_dir / "certs/local/fullchain.pem"),
        NGINX_KEY_FILE=str(data_dir / "certs/local/privkey.pem"),
        NGINX_CERT_WAIT="5",
        NGINX_CERT_CHECK_INTERVAL="1",
    )


@contextlib.contextmanager
def running_nginx(
    data_dir: Path, upstream_port: int | Sequence[int], **overrides: str
) -> Iterator[Nginx]:
    """Start the shipped entrypoint on free loopback ports; stop it gracefully at the end.

    The prefix is a world-traversable temporary directory: started as root, nginx's workers
    run as www-data (as in the image) and must reach their temp paths, which pytest's 0700
    tmp_path would hide.
    """
    prefix = Path(tempfile.mkdtemp(prefix="apiclub-nginx-"))
    prefix.chmod(0o755)
    https_port, http_port = free_ports(2)
    env = nginx_env(
        data_dir, upstream_port, https_port=https_port, http_port=http_port, prefix=prefix
    )
    env.update(overrides)
    output = prefix / "output.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(NGINX_DIR / "entrypoint.sh")],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    nginx = Nginx(process, https_port, http_port, prefix, output)
    try:
        _wait_listening(nginx)
        yield nginx
    finally:
        stop_nginx(nginx)
        shutil.rmtree(prefix, ignore_errors=True)


def stop_nginx(nginx: Nginx) -> None:
    """SIGQUIT (graceful, as the image's STOPSIGNAL), then end the watcher's process group."""
    if nginx.process.poll() is None:
        nginx.process.send_signal(signal.SIGQUIT)
        try:
            nginx.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.process.kill()
            nginx.process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(nginx.process.pid, signal.SIGKILL)


def _wait_listening(nginx: Nginx) -> None:
    """Wait for the master's pid file: nginx writes it once its sockets are bound.

    Not a probe connection: until nginx binds, another process may hold the port for a moment
    (free_ports released it), or a loopback connect may meet itself (TCP simultaneous open).
    """
    pid_file = nginx.prefix / "logs" / "nginx.pid"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if nginx.process.poll() is not None:
            pytest.fail(f"nginx exited with {nginx.process.returncode}:\n{nginx.log()}")
        # The entrypoint execs nginx, so the master keeps the entrypoint's pid.
        with contextlib.suppress(FileNotFoundError):
            if pid_file.read_text().strip() == str(nginx.process.pid):
                return
        time.sleep(0.05)
    pytest.fail(f"nginx did not listen within {START_TIMEOUT} s:\n{nginx.log()}")


def established_to(port: int) -> int:
    """How many TCP connections to 127.0.0.1:`port` are established (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and remote == f"0100007F:{port:04X}":
            count += 1
    return count
