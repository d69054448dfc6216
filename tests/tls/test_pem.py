"""The one key serialiser and the one stored-certificate loader, with real files."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apiclub.errors import CertificateError
from apiclub.tls import FileStorage
from apiclub.tls.certified import CertifiedKey
from apiclub.tls.certstore import load_stored
from apiclub.tls.pem import PemError, private_key_pem


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o277])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_serialised_key_loads_back_and_is_written_0600_whatever_the_umask(
    storage: FileStorage, umask: int
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    storage.write("certs/x/privkey.pem", pem, private=True)
    storage.write("certs/x/fullchain.pem", b"public")
    path = storage.path("certs/x/privkey.pem")
    assert (mode(path), mode(path.parent), mode(storage.root)) == (0o600, 0o700, 0o700)
    assert mode(storage.path("certs/x/fullchain.pem")) == 0o644  # the twin: public stays 0644
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert loaded.public_key() == key.public_key()


@pytest.fixture
def pair(tmp_path: Path, other_ca: trustme.CA) -> tuple[Path, Path]:
    leaf = other_ca.issue_cert("api.example.com")
    chain, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return chain, key


def test_a_good_pair_loads(pair: tuple[Path, Path]) -> None:
    certified = CertifiedKey.from_files(*pair)
    assert certified.names == ("api.example.com",)
    assert certified.key_pem == pair[1].read_bytes()


def test_a_missing_file_is_named_with_its_fix(pair: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "gone.pem"
    with pytest.raises(PemError, match=rf"^{missing} does not exist: give the path"):
        CertifiedKey.from_files(missing, pair[1])
    with pytest.raises(PemError, match=rf"^APICLUB_KEY_FILE {missing} does not exist"):
        CertifiedKey.from_files(pair[0], missing, "APICLUB_CERT_FILE", "APICLUB_KEY_FILE")


def test_a_directory_is_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(PemError, match=rf"^{tmp_path} is a directory: give the path of a PEM"):
        CertifiedKey.from_files(tmp_path, pair[1])


def test_a_chain_that_is_not_pem_is_named(pair: tuple[Path, Path]) -> None:
    pair[0].write_bytes(b"half-copied")
    with pytest.raises(PemError, match=rf"^{pair[0]} holds no PEM certificate .*leaf first"):
        CertifiedKey.from_files(*pair)


def test_a_key_that_is_not_pem_is_named(pair: tuple[Path, Path]) -> None:
    pair[1].write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PemError, match=rf"^{pair[1]} holds no PEM private key"):
        CertifiedKey.from_files(*pair)


def test_an_encrypted_key_is_named_with_the_command_that_decrypts_it(
    pair: tuple[Path, Path],
) -> None:
    key = serialization.load_pem_private_key(pair[1].read_bytes(), password=None)
    pair[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(PemError, match=rf"^{pair[1]} is encrypted: decrypt it with 'openssl pkey"):
        CertifiedKey.from_files(*pair)


def test_a_key_of_another_certificate_is_named_with_both_files(
    pair: tuple[Path, Path], other_ca: trustme.CA
) -> None:
    pair[1].write_bytes(other_ca.issue_cert("api.example.com").private_key_pem.bytes())
    with pytest.raises(PemError, match=rf"^{pair[1]} does not belong to .* in {pair[0]}") as info:
        CertifiedKey.from_files(*pair)
    assert isinstance(info.value, CertificateError)  # the CLI's one-line start-up error
    assert isinstance(info.value, ValueError)  # what callers of from_pem have always caught


def test_a_stored_certificate_loads_and_a_corrupt_one_is_logged_by_path(
    storage: FileStorage, other_ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = other_ca.issue_cert("api.example.com")
    chain_key, key_key = "certs/acme/api.example.com/fullchain.pem", "certs/acme/x/privkey.pem"
    assert load_stored(storage, chain_key, key_key) is None  # none yet, nothing logged
    storage.write(chain_key, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    storage.write(key_key, leaf.private_key_pem.bytes(), private=True)
    loaded = load_stored(storage, chain_key, key_key)
    assert loaded is not None and loaded.names == ("api.example.com",)
    assert caplog.records == []
    storage.write(chain_key, b"garbage")
    with caplog.at_level(logging.WARNING, logger="apiclub.tls"):
        assert load_stored(storage, chain_key, key_key) is None
    chain = storage.path(chain_key)
    assert f"ignoring the stored certificate {chain} ({chain} holds no PEM" in caplog.text
