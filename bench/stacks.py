"""The stacks under test, each started as its users run it, on free loopback ports.

| key | stack | certificate |
| --- | --- | --- |
| a | the tutorial: nginx TLS -> uvicorn -> FastAPI + SQLAlchemy | RSA-2048 (mkcert-like) |
| b | `apiclub serve` as shipped | apiclub's local CA (ECDSA P-256) |
| b_rsa | `apiclub serve --tls files` with (a)'s certificate: the same-certificate row | RSA-2048 |
| b_w2 | `apiclub serve --workers 2` | apiclub's local CA (ECDSA P-256) |
| b_m | `apiclub serve --metrics-port P`: (b) with metrics on | apiclub's local CA |
| c | the tutorial's nginx -> uvicorn -> apiclub's Litestar app | RSA-2048 |
| d | the nginx profile: deploy/nginx as shipped -> `apiclub serve --tls off` | apiclub's local CA |
| e | nginx `return 200`: the ceiling, no application | RSA-2048 |
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import free_ports, spawn, stop, tree_rss, wait_verified
from bench.seed import copy_database
from bench.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
CONFIGS = Path(__file__).resolve().parent / "nginx"
ENTRYPOINT = REPO / "deploy" / "nginx" / "entrypoint.sh"


@dataclass
class Running:
    """A started stack: its processes (stopped in order), ports, the root CA that verifies it."""

    key: str
    processes: Sequence[tuple[subprocess.Popen[bytes], int]]
    https_port: int
    http_port: int
    root: Path
    log: Path
    cold_start: float = 0.0
    peak_rss: int = field(default=0)

    def pids(self) -> list[int]:
        return [process.pid for process, _ in self.processes]

    def sample_rss(self) -> None:
        """Keep the highest resident size of all the stack's processes seen so far."""
        self.peak_rss = max(self.peak_rss, tree_rss(self.pids()))

    def stop(self) -> None:
        for process, sig in self.processes:
            stop(process, sig)


Ports = tuple[int, int, int]
"""HTTPS, HTTP (redirects) and upstream ports."""
Launch = Callable[[Workspace, Path, Ports], Running]


@dataclass(frozen=True)
class Stack:
    """One row of the benchmark."""

    key: str
    label: str
    cert: str
    launch: Launch

    def start(self, workspace: Workspace) -> Running:
        """Start from the stack's (prepared) directory; time to the first verified answer."""
        directory = workspace.stack_dir(self.key)
        directory.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        running = self.launch(workspace, directory, _three_ports())
        try:
            ready = wait_verified(
                running.https_port, running.root, [p for p, _ in running.processes], log=running.log
            )
        except BaseException:
            running.stop()
            raise
        running.cold_start = ready - began
        return running


def _three_ports() -> Ports:
    https, http, upstream = free_ports(3)
    return https, http, upstream


def base_env(**values: str) -> dict[str, str]:
    """This environment without the developer's APICLUB_*, DB_FILE_PATH or PICCOLO_CONF."""
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("APICLUB_", "DB_FILE", "PICCOLO_", "NGINX_"))
    }
    return {**keep, **values}


def _nginx(template: str, prefix: Path, log: Path, **values: str) -> subprocess.Popen[bytes]:
    """A private nginx (NOTES.md: `-p`, `-e stderr`, temp paths under the prefix)."""
    text = (CONFIGS / template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    for sub in ("conf", "logs", "temp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    # Started as root, the workers run as nobody and must reach the temp paths.
    prefix.chmod(0o755)
    (prefix / "conf" / "nginx.conf").write_text(text)
    argv = [NGINX, "-p", f"{prefix}/", "-c", "conf/nginx.conf", "-e", "stderr"]
    return spawn([*argv, "-g", "daemon off;"], log=log, env=base_env(), cwd=prefix)


def _uvicorn(app: str, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """uvicorn as the tutorial's start-server.sh runs it: one process, its defaults."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    return spawn(argv, log=log, env=base_env(**env), cwd=REPO)


def _apiclub(data_dir: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "apiclub", "serve", "--data-dir", str(data_dir), *args]
    return spawn(argv, log=log, env=base_env(), cwd=data_dir)


def _tutorial_nginx(
    ws: Workspace, directory: Path, log: Path, ports: Ports, template: str = "tutorial.conf"
) -> subprocess.Popen[bytes]:
    https, http, upstream = ports
    return _nginx(
        template,
        directory / "nginx",
        log,
        HTTPS_PORT=str(https),
        HTTP_PORT=str(http),
        UPSTREAM_PORT=str(upstream),
        CERT_FILE=str(ws.mkcert.chain),
        KEY_FILE=str(ws.mkcert.key),
    )


def launch_tutorial(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(a) nginx -> uvicorn -> FastAPI, on its own copy of the seeded tutorial database."""
    log = directory / "stack.log"
    database = directory / "api.db"
    if not database.exists():
        copy_database(ws.tutorial_db, database)
    api = _uvicorn("bench.tutorial.main:app", ports[2], log, DB_FILE_PATH=str(database))
    nginx = _tutorial_nginx(ws, directory, log, ports)
    processes = [(nginx, signal.SIGQUIT), (api, signal.SIGTERM)]
    return Running("a", processes, ports[0], ports[1], ws.mkcert.root, log)


def launch_apiclub(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(b) `apiclub serve` with its defaults: local-CA certificate, redirect listener."""
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    api = _apiclub(data, log, "--https-port", str(ports[0]), "--http-port", str(ports[1]))
    return Running("b", [(api, signal.SIGTERM)], ports[0], ports[1], data / "ca/root.pem", log)


def launch_apiclub_metrics(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(b_m) (b) with the admin listener on: every request counted, timed, given an id."""
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    (metrics,) = free_ports(1)
    api = _apiclub(
        data,
        log,
        *("--https-port", str(ports[0]), "--http-port", str(ports[1])),
        *("--metrics-port", str(metrics)),
    )
    return Running("b_m", [(api, signal.SIGTERM)], ports[0], ports[1], data / "ca/root.pem", log)


def launch_apiclub_workers(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(b_w2) `apiclub serve --workers 2`: one worker per core of the benchmark machine."""
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    api = _apiclub(
        data, log, "--https-port", str(ports[0]), "--http-port", str(ports[1]), "--workers", "2"
    )
    return Running("b_w2", [(api, signal.SIGTERM)], ports[0], ports[1], data / "ca/root.pem", log)


def launch_apiclub_rsa(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(b_rsa) `apiclub serve` with the tutorial's RSA-2048 certificate (files mode)."""
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    api = _apiclub(
        data,
        log,
        *("--https-port", str(ports[0]), "--http-port", str(ports[1]), "--tls", "files"),
        *("--cert-file", str(ws.mkcert.chain), "--key-file", str(ws.mkcert.key)),
    )
    return Running("b_rsa", [(api, signal.SIGTERM)], ports[0], ports[1], ws.mkcert.root, log)


def launch_litestar_uvicorn(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(c) the tutorial's nginx and uvicorn, apiclub's Litestar app."""
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    api = _uvicorn("bench.litestar_app:app", ports[2], log, APICLUB_DATA_DIR=str(data))
    nginx = _tutorial_nginx(ws, directory, log, ports)
    processes = [(nginx, signal.SIGQUIT), (api, signal.SIGTERM)]
    return Running("c", processes, ports[0], ports[1], ws.mkcert.root, log)


def launch_nginx_profile(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(d) deploy/nginx's entrypoint as shipped in front of `apiclub serve --tls off`."""
    https, http, upstream = ports
    log, data = directory / "stack.log", _apiclub_data(ws, directory)
    api = _apiclub(
        data,
        log,
        *("--tls", "off", "--manage-certs", "--trusted-proxy", "127.0.0.1"),
        # With TLS off the API's plain listener is the HTTP port, as in compose (8080).
        *("--domain", "localhost", "--http-port", str(upstream)),
    )
    prefix = directory / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)
    live = data / "certs/live/{domain}"
    env = base_env(
        APICLUB_DOMAINS="localhost",
        APICLUB_PUBLIC_HTTPS_PORT=str(https),
        NGINX_PREFIX=str(prefix),
        NGINX_HTTPS_LISTEN=f"127.0.0.1:{https}",
        NGINX_HTTP_LISTEN=f"127.0.0.1:{http}",
        NGINX_UPSTREAM=f"127.0.0.1:{upstream}",
        NGINX_CERT_FILE=f"{live}/fullchain.pem",
        NGINX_KEY_FILE=f"{live}/privkey.pem",
    )
    nginx = spawn([str(ENTRYPOINT)], log=log, env=env, cwd=prefix)
    processes = [(nginx, signal.SIGQUIT), (api, signal.SIGTERM)]
    return Running("d", processes, https, http, data / "ca/root.pem", log)


def launch_ceiling(ws: Workspace, directory: Path, ports: Ports) -> Running:
    """(e) nginx answering `return 200` itself."""
    log = directory / "stack.log"
    nginx = _tutorial_nginx(ws, directory, log, ports, template="ceiling.conf")
    return Running("e", [(nginx, signal.SIGQUIT)], ports[0], ports[1], ws.mkcert.root, log)


def _apiclub_data(ws: Workspace, directory: Path) -> Path:
    data = directory / "data"
    if not (data / "api.db").exists():
        copy_database(ws.apiclub_db, data / "api.db")
    return data


RSA = "RSA-2048 (mkcert-like)"
ECDSA = "ECDSA P-256 (apiclub local CA)"
STACKS = (
    Stack("a", "tutorial: nginx -> uvicorn + FastAPI", RSA, launch_tutorial),
    Stack("b", "apiclub serve", ECDSA, launch_apiclub),
    Stack("b_rsa", "apiclub serve, (a)'s RSA cert", RSA, launch_apiclub_rsa),
    Stack("b_w2", "apiclub serve --workers 2", ECDSA, launch_apiclub_workers),
    Stack("b_m", "apiclub serve --metrics-port (metrics on)", ECDSA, launch_apiclub_metrics),
    Stack("c", "nginx -> uvicorn + apiclub's Litestar app", RSA, launch_litestar_uvicorn),
    Stack("d", "nginx profile -> apiclub (TLS off)", ECDSA, launch_nginx_profile),
    Stack("e", "ceiling: nginx return 200", RSA, launch_ceiling),
)
