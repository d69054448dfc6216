"""A real SFTP server on 127.0.0.1: Debian's OpenSSH `sshd`, run by the test with its own
configuration, host key and authorized_keys in a temporary directory.

OpenSSH rather than a Python SFTP server: it is what a replica host runs. It logs in the user
running the tests (root in CI) by public key. Password logins are on but always fail: OpenSSH
checks them against the system's account password, which a test must not set; the failing
login still shows (in sshd's log) that Litestream sent the password apiclub gave it. As root,
sshd needs its privilege-separation directory `/run/sshd` (systemd's tmpfiles makes it at
boot; containers lack it): it is made here when missing. sshd cannot report a port-0 choice,
so a free port is picked and the start retried if another test took it meanwhile.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.tools import require_file, require_tool

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SftpServer:
    port: int
    user: str
    root: Path
    """The directory replicas go under (an absolute path on the server)."""
    client_key: Path
    """A private key the server accepts."""
    stranger_key: Path
    """A private key the server does not accept."""
    host_key_pub: Path
    """The server's public host key (what ?host-key-path names)."""
    log_file: Path

    def url(self, path: str, key: Path | None = None, host_key: Path | None = None) -> str:
        key = key if key is not None else self.client_key
        host_key = host_key if host_key is not None else self.host_key_pub
        return (
            f"sftp://{self.user}@127.0.0.1:{self.port}{self.root / path}"
            f"?host-key-path={host_key}&key-path={key}"
        )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def _keygen(path: Path) -> None:
    keygen = require_tool("ssh-keygen", "openssh-client")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(home: Path, port: int) -> Path:
    config = home / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {home / 'host_key'}\n"
        "PidFile none\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin yes\n"
        "Subsystem sftp internal-sftp\n"
        # SFTP only, for this user only: no shell, no forwarding, whatever logs in.
        f"AllowUsers {getpass.getuser()}\n"
        "ForceCommand internal-sftp\n"
        "AllowTcpForwarding no\n"
        "X11Forwarding no\n"
    )
    return config


@contextmanager
def sftp_server(home: Path) -> Iterator[SftpServer]:
    """sshd on a free loopback port, serving SFTP under `home/files` until the block ends."""
    sshd = require_file(SSHD, "openssh-server")
    home.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key", "stranger_key"):
        _keygen(home / name)
    (home / "authorized_keys").write_bytes((home / "client_key.pub").read_bytes())
    (home / "files").mkdir(exist_ok=True)
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log_file = home / "sshd.log"
    for _attempt in range(5):
        port = _free_port()
        with log_file.open("w") as log:
            process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(_config(home, port))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if _listening(process, log_file, port):
            break
        process.kill()
        process.wait()
    else:
        raise AssertionError(f"sshd did not start: {log_file.read_text()}")
    try:
        yield SftpServer(
            port=port,
            user=getpass.getuser(),
            root=home / "files",
            client_key=home / "client_key",
            stranger_key=home / "stranger_key",
            host_key_pub=home / "host_key.pub",
            log_file=log_file,
        )
    finally:
        process.kill()
        process.wait()


def _listening(process: subprocess.Popen[bytes], log_file: Path, port: int) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if f"listening on 127.0.0.1 port {port}" in log_file.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False
