from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from apiclub.errors import CertificateError
from apiclub.settings import Settings, TlsMode
from apiclub.tls import CertManager, LocalCA
from apiclub.tls.files import load_cert_files

from .tlsclient import client_context, handshake, serve_tls

NAMES = ("localhost", "127.0.0.1", "::1")
NOBODY = 65534


def write_leaf(leaf: trustme.LeafCert, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(exist_ok=True)
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return cert, key


@pytest.fixture
def files(other_ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    return write_leaf(other_ca.issue_cert(*NAMES), tmp_path / "given")


def files_settings(tmp_path: Path, cert: Path, key: Path) -> Settings:
    return Settings(tls=TlsMode.FILES, cert_file=cert, key_file=key, data_dir=tmp_path / "data")


@pytest.mark.anyio
async def test_given_files_are_served_and_verify(
    other_ca: trustme.CA, files: tuple[Path, Path], tmp_path: Path
) -> None:
    manager = CertManager(files_settings(tmp_path, *files))
    manager.prepare()
    assert manager.root_cert_path() is None
    client = ssl.create_default_context()
    other_ca.configure_trust(client)
    async with serve_tls(manager.server_context()) as port:
        for hostname in NAMES:
            peer = await handshake(port, client, hostname)
            assert peer.serial == manager.current_certificate().serial_number


@pytest.mark.anyio
async def test_given_files_fail_for_a_client_trusting_only_the_local_ca(
    files: tuple[Path, Path], tmp_path: Path, local_ca: LocalCA
) -> None:
    manager = CertManager(files_settings(tmp_path, *files))
    manager.prepare()
    async with serve_tls(manager.server_context()) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(port, client_context(local_ca.root_cert_path), "localhost")


def test_changed_files_are_reloaded_by_renew(
    other_ca: trustme.CA, files: tuple[Path, Path], tmp_path: Path
) -> None:
    manager = CertManager(files_settings(tmp_path, *files))
    manager.prepare()
    before = manager.current_certificate().serial_number
    assert manager.renew() is False  # unchanged files: nothing to do
    write_leaf(other_ca.issue_cert(*NAMES), files[0].parent)
    assert manager.renew() is True
    assert manager.current_certificate().serial_number != before
    assert manager.renew() is False


def test_a_broken_replacement_keeps_the_old_certificate(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    manager = CertManager(files_settings(tmp_path, *files))
    manager.prepare()
    before = manager.current_certificate().serial_number
    files[0].write_bytes(b"half-copied")
    with pytest.raises(CertificateError, match="holds no PEM certificate"):
        manager.renew()
    assert manager.current_certificate().serial_number == before


def test_good_files_load(files: tuple[Path, Path]) -> None:
    certified = load_cert_files(*files, NAMES)
    assert certified.covers("localhost")


def test_missing_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(CertificateError, match=rf"APICLUB_CERT_FILE {missing} does not exist"):
        load_cert_files(missing, files[1], NAMES)
    with pytest.raises(CertificateError, match=rf"APICLUB_KEY_FILE {missing} does not exist"):
        load_cert_files(files[0], missing, NAMES)


def test_directory_instead_of_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=rf"{tmp_path} is a directory"):
        load_cert_files(files[0], tmp_path, NAMES)


def _load_as_nobody(cert: str, key: str) -> str:
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    try:
        load_cert_files(Path(cert), Path(key), NAMES)
    except CertificateError as exc:
        return str(exc)
    return "loaded"


def test_unreadable_file(files: tuple[Path, Path]) -> None:
    # Mode 000 does not stop root, so as root the load runs in a child that drops to nobody.
    shared = Path(tempfile.mkdtemp())
    try:
        shared.chmod(0o755)
        cert, key = shutil.copy(files[0], shared), shutil.copy(files[1], shared)
        Path(cert).chmod(0o644)
        Path(key).chmod(0)
        if os.geteuid() != 0:
            with pytest.raises(CertificateError) as info:
                load_cert_files(Path(cert), Path(key), NAMES)
            message = str(info.value)
        else:
            with concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                message = pool.submit(_load_as_nobody, str(cert), str(key)).result(60)
    finally:
        shutil.rmtree(shared)
    assert message.startswith(f"APICLUB_KEY_FILE {key} cannot be read: permission denied")


def test_garbage_certificate(files: tuple[Path, Path]) -> None:
    files[0].write_bytes(b"hello")
    with pytest.raises(CertificateError, match=rf"{files[0]} holds no PEM certificate"):
        load_cert_files(*files, NAMES)


def test_garbage_key(files: tuple[Path, Path]) -> None:
    files[1].write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CertificateError, match=rf"{files[1]} holds no PEM private key"):
        load_cert_files(*files, NAMES)


def test_key_of_another_certificate(other_ca: trustme.CA, files: tuple[Path, Path]) -> None:
    other = other_ca.issue_cert("localhost")
    files[1].write_bytes(other.private_key_pem.bytes())
    with pytest.raises(CertificateError, match=rf"{files[1]} does not belong to .*{files[0]}"):
        load_cert_files(*files, NAMES)


def test_expired_certificate(other_ca: trustme.CA, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    leaf = other_ca.issue_cert(
        *NAMES, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    cert, key = write_leaf(leaf, tmp_path / "old")
    with pytest.raises(CertificateError, match=rf"{cert} expired on .*renew it"):
        load_cert_files(cert, key, NAMES)


def test_not_yet_valid_certificate(other_ca: trustme.CA, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    leaf = other_ca.issue_cert(
        *NAMES, not_before=now + timedelta(days=1), not_after=now + timedelta(days=30)
    )
    cert, key = write_leaf(leaf, tmp_path / "future")
    with pytest.raises(CertificateError, match=rf"{cert} is not valid until .*clock"):
        load_cert_files(cert, key, NAMES)


def test_uncovered_names_warn_but_load(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="apiclub.tls"):
        load_cert_files(*files, ["localhost", "api.example.com"])
    assert [r.getMessage() for r in caplog.records if "does not cover" in r.getMessage()] == [
        f"{files[0]} does not cover 'api.example.com' (it covers localhost, 127.0.0.1, ::1): "
        "clients connecting by that name will reject it"
    ]


def test_covered_names_do_not_warn(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="apiclub.tls"):
        load_cert_files(*files, NAMES)
    assert caplog.records == []
