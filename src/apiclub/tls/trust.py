"""Adding the local CA's root to the system trust store (`apiclub ca install`), like mkcert.

Only the Debian family is automated, and only as root; elsewhere the exact commands are
given, because changing what a machine trusts should stay the operator's visible decision.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from apiclub.errors import CertificateError

DEBIAN_ANCHOR_DIR = Path("/usr/local/share/ca-certificates")
# update-ca-certificates only picks up files ending in .crt.
ANCHOR_NAME = "apiclub-local-ca.crt"
UPDATE_COMMAND = "update-ca-certificates"


def install_root(
    root: Path,
    *,
    anchor_dir: Path = DEBIAN_ANCHOR_DIR,
    update_command: str | None = None,
    as_root: bool | None = None,
) -> str:
    """Copy `root` into the Debian/Ubuntu trust store and refresh it; return what was done.

    Args:
        root: the local CA's root certificate (PEM).
        anchor_dir: where the trust store takes extra anchors (tests point it elsewhere).
        update_command: the refresh tool; found on PATH when None.
        as_root: whether we may write the system store; the effective uid decides when None.

    Raises:
        CertificateError: the store cannot be changed from here; the message holds the
            commands to run by hand on Debian, Fedora and macOS.
    """
    if not root.is_file():
        raise CertificateError(f"{root} does not exist: run 'apiclub ca path' to create the CA")
    command = update_command or shutil.which(UPDATE_COMMAND)
    privileged = os.geteuid() == 0 if as_root is None else as_root
    if not privileged or command is None or not anchor_dir.is_dir():
        reason = (
            "not running as root"
            if not privileged
            else f"{UPDATE_COMMAND} or {anchor_dir} not found (not Debian/Ubuntu?)"
        )
        raise CertificateError(
            f"cannot install the root automatically: {reason}.\n" + (trust_commands(root))
        )
    target = anchor_dir / ANCHOR_NAME
    try:
        shutil.copyfile(root, target)
        target.chmod(0o644)
    except OSError as exc:
        raise CertificateError(f"copying {root} to {target}: {exc.strerror or exc}") from exc
    result = subprocess.run(  # noqa: S603 - a fixed tool path, no shell
        [command], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CertificateError(
            f"{command} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    return (
        f"installed {root} as {target} and ran {command}; browsers with their own store "
        "(Firefox) still need it imported by hand"
    )


def trust_commands(root: Path) -> str:
    """The commands that make this machine trust `root`, per system."""
    return (
        "Run the one for your system:\n"
        f"  Debian/Ubuntu: sudo cp {root} {DEBIAN_ANCHOR_DIR / ANCHOR_NAME} "
        f"&& sudo {UPDATE_COMMAND}\n"
        f"  Fedora/RHEL:   sudo trust anchor --store {root}\n"
        "  macOS:         sudo security add-trusted-cert -d -r trustRoot "
        f"-k /Library/Keychains/System.keychain {root}\n"
        "  Firefox:       Settings > Privacy & Security > Certificates > View Certificates > "
        f"Authorities > Import {root}"
    )
