"""The operating system's trust store: where each Linux family takes extra roots, as mkcert does.

Writing it needs root; without root the exact command is given instead, because what a machine
trusts should stay the operator's visible decision.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from apiclub.tls.trust_result import StoreResult

ANCHOR_STEM = "apiclub-local-ca"


@dataclass(frozen=True)
class SystemStore:
    """One Linux family's anchor folder and the command that rebuilds its bundle."""

    family: str
    anchor_dir: Path
    suffix: str
    """Debian's update-ca-certificates only picks up files ending in .crt."""
    refresh: tuple[str, ...]

    @property
    def label(self) -> str:
        """How the results name this store."""
        return f"system store ({self.family})"

    @property
    def anchor(self) -> Path:
        """Where our root goes."""
        return self.anchor_dir / f"{ANCHOR_STEM}{self.suffix}"

    def available(self) -> bool:
        """Tell whether this machine is of this family (its folder and its tool exist)."""
        return self.anchor_dir.is_dir() and shutil.which(self.refresh[0]) is not None

    def commands(self, root: Path, *, remove: bool = False) -> str:
        """The commands an administrator runs to do by hand what `add`/`remove` do."""
        refresh = " ".join(self.refresh)
        if remove:
            return f"sudo rm -f {shlex.quote(str(self.anchor))} && sudo {refresh}"
        return f"sudo cp {shlex.quote(str(root))} {shlex.quote(str(self.anchor))} && sudo {refresh}"


SYSTEM_STORES = (
    SystemStore(
        "Debian/Ubuntu",
        Path("/usr/local/share/ca-certificates"),
        ".crt",
        ("update-ca-certificates",),
    ),
    SystemStore(
        "Fedora/RHEL",
        Path("/etc/pki/ca-trust/source/anchors"),
        ".pem",
        ("update-ca-trust", "extract"),
    ),
    SystemStore(
        "Arch",
        Path("/etc/ca-certificates/trust-source/anchors"),
        ".crt",
        ("trust", "extract-compat"),
    ),
    SystemStore(
        "openSUSE", Path("/usr/share/pki/trust/anchors"), ".pem", ("update-ca-certificates",)
    ),
)


def add_to_system(
    root: Path, *, stores: tuple[SystemStore, ...] = SYSTEM_STORES, as_root: bool | None = None
) -> StoreResult:
    """Copy `root` into this machine's system store and rebuild the bundle."""
    return _change(root, stores, as_root, remove=False)


def remove_from_system(
    root: Path, *, stores: tuple[SystemStore, ...] = SYSTEM_STORES, as_root: bool | None = None
) -> StoreResult:
    """Take our root out of the system store again and rebuild the bundle."""
    return _change(root, stores, as_root, remove=True)


def _change(
    root: Path, stores: tuple[SystemStore, ...], as_root: bool | None, *, remove: bool
) -> StoreResult:
    store = next((s for s in stores if s.available()), None)
    if store is None:
        hints = "; ".join(f"{s.family}: {s.commands(root, remove=remove)}" for s in stores)
        return StoreResult(
            "system store",
            "skipped",
            f"no known system store on this machine (run one of: {hints})",
        )
    privileged = os.geteuid() == 0 if as_root is None else as_root
    if not privileged:
        return StoreResult(
            store.label,
            "skipped",
            f"not running as root: run {store.commands(root, remove=remove)}",
        )
    if remove and not store.anchor.exists():
        return StoreResult(store.label, "absent", f"{store.anchor} is not there")
    try:
        if remove:
            store.anchor.unlink()
        else:
            shutil.copyfile(root, store.anchor)
            store.anchor.chmod(0o644)
    except OSError as exc:
        return StoreResult(store.label, "failed", f"{store.anchor}: {exc.strerror or exc}")
    command = [shutil.which(store.refresh[0]) or store.refresh[0], *store.refresh[1:]]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        return StoreResult(
            store.label,
            "failed",
            f"{' '.join(store.refresh)} failed (exit {result.returncode}): {result.stderr.strip()}",
        )
    ran = " ".join(store.refresh)
    if remove:
        return StoreResult(store.label, "removed", f"removed {store.anchor}, ran {ran}")
    return StoreResult(store.label, "added", f"copied to {store.anchor}, ran {ran}")
