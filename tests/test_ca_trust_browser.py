"""`apiclub ca trust` as a browser user judges it: headless Chromium from Debian loads the page.

Chromium on Linux reads `~/.pki/nssdb`, not the system store, so this is the test that a
`curl` run cannot stand in for. HOME is a throwaway folder; only the NSS store is changed
(`--store nss`), so the machine's own trust store is never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.processes import run_apiclub, served
from tests.tools import require_tool

CHROMIUM_TIMEOUT = 60  # seconds
# The flags NOTES.md lists for a headless Chromium on a machine with no outside network.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load(url: str, home: Path, attempt: str) -> subprocess.CompletedProcess[str]:
    """Chromium's rendering of `url` (stdout), or its load error (stderr)."""
    chromium = require_tool("chromium", "chromium")
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={home / attempt}", "--dump-dom", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT,
        check=False,
    )


def assert_loads(url: str, home: Path, attempt: str) -> None:
    result = load(url, home, attempt)
    assert '"status":"ok"' in result.stdout, result.stderr[-2000:]


def assert_refused(url: str, home: Path, attempt: str) -> None:
    result = load(url, home, attempt)
    assert '"status":"ok"' not in result.stdout
    assert "ERR_CERT_AUTHORITY_INVALID" in result.stderr, result.stderr[-2000:]


def trust(command: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`apiclub ca trust|untrust --store nss`, with HOME as the test set it."""
    return run_apiclub("ca", command, "--store", "nss", data_dir=data_dir)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_chromium_trusts_the_local_ca_after_trust_and_not_after_untrust(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("certutil", "libnss3-tools")
    monkeypatch.setenv("HOME", str(home))
    data_dir = tmp_path / "data"
    http_port = free_port()
    with served(data_dir, "--http-port", str(http_port)) as api:
        https_url = f"{api.url}/"
        redirect_url = f"http://localhost:{http_port}/"

        assert_refused(https_url, home, "before")

        added = trust("trust", data_dir)
        assert added.returncode == 0, added.stderr
        assert f"Chromium/Chrome NSS database ({home / '.pki' / 'nssdb'}): added" in added.stdout
        assert_loads(https_url, home, "after-https")
        assert_loads(redirect_url, home, "after-redirect")

        removed = trust("untrust", data_dir)
        assert removed.returncode == 0, removed.stderr
        assert "removed" in removed.stdout
        assert_refused(https_url, home, "untrusted")


def test_trust_finds_a_firefox_profile_and_certutil_lists_the_root(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certutil = require_tool("certutil", "libnss3-tools")
    monkeypatch.setenv("HOME", str(home))
    profile = home / ".mozilla" / "firefox" / "x1y2z3.default-release"
    profile.mkdir(parents=True)
    subprocess.run([certutil, "-N", "-d", f"sql:{profile}", "--empty-password"], check=True)
    data_dir = tmp_path / "data"
    added = trust("trust", data_dir)
    assert added.returncode == 0, added.stderr
    assert f"Firefox profile x1y2z3.default-release NSS database ({profile}): added" in added.stdout
    listing = subprocess.run(
        [certutil, "-L", "-d", f"sql:{profile}"], capture_output=True, text=True, check=True
    )
    assert "apiclub local CA" in listing.stdout
    assert "C,," in listing.stdout
    trust("untrust", data_dir)
    listing = subprocess.run(
        [certutil, "-L", "-d", f"sql:{profile}"], capture_output=True, text=True, check=True
    )
    assert "apiclub local CA" not in listing.stdout
