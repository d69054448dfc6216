from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from apiclub.errors import CertificateError
from apiclub.tls import LocalCA, trust_root, untrust_root
from apiclub.tls.local_ca import ROOT_KEY_KEY
from apiclub.tls.storage import FileStorage
from apiclub.tls.trust_nss import nickname
from apiclub.tls.trust_system import SystemStore
from tests.tools import require_tool


@pytest.fixture
def key_path(local_ca: LocalCA, storage: FileStorage) -> Path:
    return storage.path(ROOT_KEY_KEY)


def fake_store(tmp_path: Path, refresh: str = "true") -> SystemStore:
    """A system store whose anchor folder is ours; `refresh` is a real command (true/false)."""
    anchors = tmp_path / "anchors"
    anchors.mkdir(exist_ok=True)
    return SystemStore("Testix", anchors, ".crt", (refresh,))


def by_store(results: list) -> dict[str, tuple[str, str]]:
    return {r.store: (r.outcome, r.detail) for r in results}


def listed(db: Path, name: str) -> bool:
    certutil = require_tool("certutil", "libnss3-tools")
    result = subprocess.run(
        [certutil, "-L", "-d", f"sql:{db}", "-n", name], capture_output=True, check=False
    )
    return result.returncode == 0


def test_trust_adds_to_the_system_store_and_untrust_removes(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    store = fake_store(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    results = trust_root(
        local_ca.root_cert_path, key_path, home=home, stores=(store,), as_root=True
    )
    assert results[0].store == "system store (Testix)"
    assert results[0].outcome == "added"
    assert store.anchor.read_bytes() == local_ca.root_pem
    assert stat.S_IMODE(store.anchor.stat().st_mode) == 0o644
    results = untrust_root(local_ca.root_cert_path, home=home, stores=(store,), as_root=True)
    assert results[0].outcome == "removed"
    assert not store.anchor.exists()
    again = untrust_root(local_ca.root_cert_path, home=home, stores=(store,), as_root=True)
    assert again[0].outcome == "absent"


def test_a_failing_refresh_tool_is_reported(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    store = fake_store(tmp_path, refresh="false")
    results = trust_root(
        local_ca.root_cert_path, key_path, home=tmp_path, stores=(store,), as_root=True
    )
    assert results[0].outcome == "failed"
    assert results[0].detail.startswith("false failed (exit 1)")


def test_without_root_the_exact_command_is_given(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    store = fake_store(tmp_path)
    results = trust_root(
        local_ca.root_cert_path, key_path, home=tmp_path, stores=(store,), as_root=False
    )
    assert results[0].outcome == "skipped"
    assert results[0].detail == (
        f"not running as root: run sudo cp {local_ca.root_cert_path} {store.anchor} && sudo true"
    )
    assert not store.anchor.exists()


def test_an_unknown_system_lists_every_known_command(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    absent = SystemStore("Testix", tmp_path / "absent", ".crt", ("true",))
    results = trust_root(
        local_ca.root_cert_path, key_path, home=tmp_path, stores=(absent,), as_root=True
    )
    assert results[0].outcome == "skipped"
    assert "no known system store on this machine" in results[0].detail
    assert f"Testix: sudo cp {local_ca.root_cert_path}" in results[0].detail


def test_a_root_whose_key_others_can_read_is_never_installed(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    store = fake_store(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    key_path.chmod(0o644)
    with pytest.raises(
        CertificateError, match=r"has mode 0644, readable by others: run 'chmod 600"
    ):
        trust_root(local_ca.root_cert_path, key_path, home=home, stores=(store,), as_root=True)
    assert not store.anchor.exists()
    assert not (home / ".pki").exists()


def test_missing_root_file(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="does not exist: run 'apiclub ca path'"):
        trust_root(tmp_path / "root.pem", tmp_path / "key.pem", home=tmp_path)


def test_browsers_nss_databases_get_the_root_and_lose_it_again(
    local_ca: LocalCA, key_path: Path, tmp_path: Path
) -> None:
    certutil = require_tool("certutil", "libnss3-tools")
    home = tmp_path / "home"
    firefox = home / ".mozilla" / "firefox" / "abcd.default-release"
    firefox.mkdir(parents=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{firefox}", "--empty-password"], check=True)
    store = fake_store(tmp_path)
    name = nickname(local_ca.cert)

    results = by_store(
        trust_root(local_ca.root_cert_path, key_path, home=home, stores=(store,), as_root=True)
    )
    chromium = home / ".pki" / "nssdb"
    assert results[f"Chromium/Chrome NSS database ({chromium})"][0] == "added"
    assert results[f"Firefox profile abcd.default-release NSS database ({firefox})"][0] == "added"
    assert stat.S_IMODE(chromium.stat().st_mode) == 0o700
    assert listed(chromium, name)
    assert listed(firefox, name)

    again = by_store(
        trust_root(local_ca.root_cert_path, key_path, home=home, stores=(store,), as_root=True)
    )
    assert again[f"Chromium/Chrome NSS database ({chromium})"][0] == "present"

    removed = by_store(
        untrust_root(local_ca.root_cert_path, home=home, stores=(store,), as_root=True)
    )
    assert removed[f"Chromium/Chrome NSS database ({chromium})"][0] == "removed"
    assert removed[f"Firefox profile abcd.default-release NSS database ({firefox})"][0] == (
        "removed"
    )
    assert not listed(chromium, name)
    assert not listed(firefox, name)


def test_without_certutil_one_line_names_the_package(
    local_ca: LocalCA, key_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH on which certutil is not found: the machine of a user without libnss3-tools.
    empty = tmp_path / "bin"
    empty.mkdir()
    (empty / "true").symlink_to("/bin/true")
    monkeypatch.setenv("PATH", str(empty))
    store = fake_store(tmp_path)
    results = trust_root(
        local_ca.root_cert_path, key_path, home=tmp_path, stores=(store,), as_root=True
    )
    assert results[0].outcome == "added"
    assert results[1].store == "NSS databases (Chromium, Firefox)"
    assert results[1].outcome == "skipped"
    assert "apt-get install libnss3-tools" in results[1].detail
    assert not (tmp_path / ".pki").exists()
