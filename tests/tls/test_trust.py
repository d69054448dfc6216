from __future__ import annotations

import stat
from pathlib import Path

import pytest

from apiclub.errors import CertificateError
from apiclub.tls import LocalCA, install_root
from apiclub.tls.trust import ANCHOR_NAME


def test_install_copies_root_and_runs_the_update_tool(local_ca: LocalCA, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    message = install_root(
        local_ca.root_cert_path, anchor_dir=anchors, update_command="/bin/true", as_root=True
    )
    target = anchors / ANCHOR_NAME
    assert target.read_bytes() == local_ca.root_pem
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert message.startswith(f"installed {local_ca.root_cert_path} as {target} and ran /bin/true")


def test_failing_update_tool_is_reported(local_ca: LocalCA, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"/bin/false failed \(exit 1\)"):
        install_root(
            local_ca.root_cert_path, anchor_dir=tmp_path, update_command="/bin/false", as_root=True
        )


def test_without_root_the_commands_are_given(local_ca: LocalCA, tmp_path: Path) -> None:
    root = local_ca.root_cert_path
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    with pytest.raises(CertificateError) as info:
        install_root(root, anchor_dir=anchors, update_command="/bin/true", as_root=False)
    message = str(info.value)
    assert message.startswith("cannot install the root automatically: not running as root")
    assert f"sudo cp {root} /usr/local/share/ca-certificates/{ANCHOR_NAME}" in message
    assert f"sudo trust anchor --store {root}" in message
    assert "sudo security add-trusted-cert -d -r trustRoot -k " in message
    assert list(anchors.iterdir()) == []


def test_without_the_debian_store_the_commands_are_given(local_ca: LocalCA, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"(?s)not found .*trust anchor"):
        install_root(
            local_ca.root_cert_path,
            anchor_dir=tmp_path / "absent",
            update_command="/bin/true",
            as_root=True,
        )


def test_missing_root_file(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="does not exist"):
        install_root(tmp_path / "root.pem", anchor_dir=tmp_path, as_root=True)
