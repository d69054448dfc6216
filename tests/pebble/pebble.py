"""A real ACME server for the tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS.

Every name resolves to 127.0.0.1 (challtestsrv's default answer), so pebble validates HTTP-01
challenges for `api.example.com` by connecting to 127.0.0.1:<http_port>, our redirect listener.
Its roots are new at every start: `root_pem` fetches them from the management port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")
MISSING = "pebble is not installed (apt-get install -y pebble): no ACME server to test against"
# pebble 2.10 (ARI, profiles, IP identifiers, EAB) from Debian sid, unpacked by .ci/run beside
# Debian 12's 2.4 (see docs/reliability.md): APICLUB_PEBBLE_210 names its bin folder.
PEBBLE_210_BIN = Path(os.environ.get("APICLUB_PEBBLE_210", "/opt/pebble-2.10/usr/bin"))
MISSING_210 = (
    f"not in {PEBBLE_210_BIN}: sudo bash tests/fetch-pebble-210.sh (or sudo make test-deps) "
    "fetches it from Debian sid; APICLUB_PEBBLE_210 names another folder"
)
# Its example configuration's profiles; LE's shortlived is 160 h, pebble's 6 days.
PROFILES = {
    "default": {"description": "90 days", "validityPeriod": 90 * 86400},
    "shortlived": {"description": "6 days", "validityPeriod": 6 * 86400},
}


@dataclass(frozen=True)
class Binaries:
    """One pebble release: its two programs and how challtestsrv names its DNS flag."""

    pebble: str
    challtestsrv: str
    version: str

    @property
    def dns_flags(self) -> tuple[str, ...]:
        # 2.10 renamed -dns01 to -dnsserver and opens a DoH listener on :8443 unless told not to.
        if self.version == "2.4":
            return ("-dns01",)
        return ("-doh", "", "-dnsserver")


def debian_12() -> Binaries | None:
    if PEBBLE is None or CHALLTESTSRV is None:
        return None
    return Binaries(PEBBLE, CHALLTESTSRV, "2.4")


def pebble_210() -> Binaries | None:
    pebble, chall = PEBBLE_210_BIN / "pebble", PEBBLE_210_BIN / "pebble-challtestsrv"
    if not (os.access(pebble, os.X_OK) and os.access(chall, os.X_OK)):
        return None
    return Binaries(str(pebble), str(chall), "2.10")


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (the DNS server takes both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for both TCP and UDP")


@dataclass(frozen=True)
class Pebble:
    directory: str
    """The ACME directory URL."""
    ca_bundle: Path
    """The CA that signed pebble's own HTTPS listener (APICLUB_ACME_CA_BUNDLE)."""
    http_port: int
    """Where pebble connects to validate HTTP-01 challenges."""
    management: str
    """Base URL of the management interface (roots, intermediates)."""
    workdir: Path
    version: str = "2.4"

    def post(self, path: str, body: object) -> bytes:
        """POST JSON to the management interface (2.10: `/set-renewal-info/`)."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        request = urllib.request.Request(  # noqa: S310
            f"{self.management}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as r:  # noqa: S310
            answer: bytes = r.read()
            return answer

    def log(self) -> str:
        """What pebble printed so far (e.g. "... is a replacement of ...")."""
        return (self.workdir / "pebble.log").read_text(errors="replace")

    def fetch(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"{self.management}{path}", context=context, timeout=10) as r:  # noqa: S310
            body: bytes = r.read()
            return body

    def roots_file(self) -> Path:
        """Pebble's current root (what a client trusts), fetched from the management port."""
        path = self.workdir / "pebble-root.pem"
        if not path.exists():
            path.write_bytes(self.fetch("/roots/0"))
        return path


@contextlib.contextmanager
def run_pebble(
    workdir: Path,
    http_port: int,
    binaries: Binaries | None = None,
    **extra: object,
) -> Iterator[Pebble]:
    """Start challtestsrv and pebble on free ports; stop both when the block ends.

    `binaries` defaults to Debian 12's pebble; `extra` is merged into pebble's configuration
    (profiles, externalAccountMACKeys, certificateValidityPeriod, ...).
    """
    binaries = binaries or debian_12()
    assert binaries is not None, MISSING
    workdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(workdir / "key.pem"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    dns, acme, mgmt, tls, chall_mgmt = (free_port() for _ in range(5))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme}",
            "managementListenAddress": f"127.0.0.1:{mgmt}",
            "certificate": str(workdir / "cert.pem"),
            "privateKey": str(workdir / "key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            **extra,
        }
    }
    config_file = workdir / "pebble.json"
    config_file.write_text(json.dumps(config))
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        # Always make a new authorization, so every order really goes through HTTP-01.
        "PEBBLE_AUTHZREUSE": "0",
    }
    logs = (workdir / "challtestsrv.log").open("wb"), (workdir / "pebble.log").open("wb")
    dns_server = subprocess.Popen(
        [
            binaries.challtestsrv,
            *binaries.dns_flags,
            *(f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", ""),
            *("-management", f"127.0.0.1:{chall_mgmt}"),
            *("-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""),
        ],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    server = subprocess.Popen(
        [
            binaries.pebble,
            "-strict=false",
            "-dnsserver",
            f"127.0.0.1:{dns}",
            "-config",
            str(config_file),
        ],
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    pebble = Pebble(
        directory=f"https://127.0.0.1:{acme}/dir",
        ca_bundle=workdir / "ca.pem",
        http_port=http_port,
        management=f"https://127.0.0.1:{mgmt}",
        workdir=workdir,
        version=binaries.version,
    )
    try:
        _wait_until_up(pebble, server)
        yield pebble
    finally:
        for process in (server, dns_server):
            process.terminate()
        for process in (server, dns_server):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _wait_until_up(pebble: Pebble, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (pebble.workdir / "pebble.log").read_text(errors="replace")
            raise RuntimeError(f"pebble exited with {process.returncode}: {log}")
        try:
            pebble.fetch("/roots/0")
        except OSError:
            time.sleep(0.05)
            continue
        return
    raise RuntimeError("pebble did not start within 15 s")
