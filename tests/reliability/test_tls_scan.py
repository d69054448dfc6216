"""An sslyze scan of the real HTTPS listener against Mozilla's "intermediate" profile.

The certificates come from the project's own CA (`--tls internal`): trustme leaves fail
sslyze's chain checks (critical SAN, NOTES.md). sslyze runs from `.venv/sslyze`
(tests/reliability/sslyze_scan.py) because its `cryptography` pin clashes with ours.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from apiclub.tls.local_ca import LocalCA
from apiclub.tls.storage import FileStorage
from tests.processes import served
from tests.reliability.sslyze_scan import Scan, scan, sslyze_python
from tests.reliability.weak_tls import weak_tls_server

INTERMEDIATE_CURVES = {"X25519", "secp256r1", "secp384r1"}
# The one deviation from "intermediate", and why it stays: OpenSSL 3's default groups also
# include X448 and secp521r1. Both are stronger than the profile's curves (224- and 256-bit
# security) and are used only by a client that offers and prefers them, so nothing is weakened.
# Removing them needs a group *list*, which Python 3.11's `ssl` cannot set: `set_ecdh_curve`
# keeps exactly one group, and one group either locks out the profile's older clients
# (X25519 only: Java 8, IE 11 and Safari 9 lack it) or costs TLS 1.3 browsers, which send an
# X25519 key share only, a HelloRetryRequest round trip on every handshake (P-256 only).
# `SSLContext.set_groups` arrives in a later Python; revisit then.
EXTRA_CURVES = {"X448", "secp521r1"}
ALLOWED_ISSUES = {"tls_curves"}
CA_FILE = "Supplied CA file"
"""sslyze's name for the `--certinfo_ca_file` trust store (the others are public stores)."""
LEGACY_PROTOCOLS = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")


@pytest.fixture(scope="session")
def sslyze(pytestconfig: pytest.Config) -> Path:
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def announce(line: str) -> None:
        # Creating the venv takes a while: say so on the terminal, not in captured output.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stderr.write(f"\n{line}\n")

    return sslyze_python(announce)


def supported_curves(result: Scan) -> set[str]:
    return {curve["name"] for curve in result.command("elliptic_curves")["supported_curves"]}


def test_https_listener_passes_mozilla_intermediate(sslyze: Path, tmp_path: Path) -> None:
    with served(tmp_path, "--tls", "internal") as server:
        result = scan(sslyze, server.port, server.root, tmp_path)
    # sslyze's own verdict: everything but the documented curve deviation passes.
    assert set(result.issues) <= ALLOWED_ISSUES, result.output
    assert supported_curves(result) == INTERMEDIATE_CURVES | EXTRA_CURVES
    # TLS 1.0 and 1.1 (and SSL) refused; 1.2 and 1.3 offered.
    for protocol in LEGACY_PROTOCOLS:
        assert result.command(f"{protocol}_cipher_suites")["is_tls_version_supported"] is False
    assert result.command("tls_1_3_cipher_suites")["is_tls_version_supported"] is True
    # No weak cipher: every TLS 1.2 suite has forward secrecy (ECDHE) and an AEAD.
    tls12 = result.accepted_suites("tls_1_2_cipher_suites")
    assert tls12
    for suite in tls12:
        assert suite.startswith("TLS_ECDHE_"), suite
        assert "_GCM_" in suite or "_CHACHA20_POLY1305_" in suite, suite
    # A correct chain: leaf then nothing else (the root is not sent), verified up to our root.
    [deployment] = result.command("certificate_info")["certificate_deployments"]
    assert deployment["received_chain_has_valid_order"] is True
    assert deployment["received_chain_contains_anchor_certificate"] is False
    ours = [p for p in deployment["path_validation_results"] if p["trust_store"]["name"] == CA_FILE]
    assert [p["was_validation_successful"] for p in ours] == [True]
    verified = [c["subject"]["rfc4514_string"] for c in deployment["verified_certificate_chain"]]
    assert verified[0] == "CN=localhost,O=apiclub local certificate"
    assert verified[-1].startswith("CN=apiclub local CA")
    assert deployment["verified_chain_has_sha1_signature"] is False


def test_scan_trusting_another_root_fails_the_chain_check(sslyze: Path, tmp_path: Path) -> None:
    other = LocalCA.load_or_create(FileStorage(tmp_path / "other-ca")).root_cert_path
    with served(tmp_path / "served", "--tls", "internal") as server:
        result = scan(sslyze, server.port, other, tmp_path)
    assert "certificate_path_validation" in result.issues, result.output


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_scan_catches_tls_1_0_and_weak_ciphers(sslyze: Path, tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(FileStorage(tmp_path / "ca"))
    with weak_tls_server(ca.issue_cert(["localhost", "127.0.0.1"])) as port:
        result = scan(sslyze, port, ca.root_cert_path, tmp_path)
    assert {"tls_versions", "ciphers"} <= set(result.issues), result.output
    assert result.command("tls_1_0_cipher_suites")["is_tls_version_supported"] is True
    assert any("_CBC_" in suite for suite in result.accepted_suites("tls_1_2_cipher_suites"))
