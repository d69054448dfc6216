from __future__ import annotations

import asyncio
import logging
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from apiclub.errors import CertificateError, ConfigError, StorageError
from apiclub.settings import Settings, TlsMode
from apiclub.tls import CertManager, root_cert_path
from apiclub.tls.local_source import LOCAL_CHAIN_KEY, LOCAL_KEY_KEY

from .tlsclient import client_context, echo_ok, handshake, open_tls, serve_tls


def settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **changes)  # type: ignore[arg-type]


def prepared(config: Settings, **kwargs: timedelta) -> CertManager:
    manager = CertManager(config, **kwargs)
    manager.prepare()
    return manager


def test_prepare_stores_leaf_and_root_in_the_data_dir(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path))
    data = tmp_path / "data"
    assert manager.root_cert_path() == data / "ca" / "root.pem"
    for name, mode in [
        ("ca/root.pem", 0o644),
        ("ca/root-key.pem", 0o600),
        (LOCAL_CHAIN_KEY, 0o644),
        (LOCAL_KEY_KEY, 0o600),
        ("certs", 0o700),
        ("certs/local", 0o700),
        ("ca", 0o700),
    ]:
        assert stat.S_IMODE((data / name).stat().st_mode) == mode, name
    stored = x509.load_pem_x509_certificate((data / LOCAL_CHAIN_KEY).read_bytes())
    assert stored == manager.current_certificate()


def test_stored_leaf_is_reused_by_the_next_process(tmp_path: Path) -> None:
    first = prepared(settings(tmp_path)).current_certificate()
    second = prepared(settings(tmp_path)).current_certificate()
    assert first.serial_number == second.serial_number


def test_stored_leaf_is_reissued_when_names_change(tmp_path: Path) -> None:
    first = prepared(settings(tmp_path)).current_certificate()
    changed = prepared(settings(tmp_path, domains=("localhost", "api.test")))
    assert changed.current_certificate().serial_number != first.serial_number
    assert changed.renew() is False


def test_stored_leaf_is_reissued_when_the_root_changes(tmp_path: Path) -> None:
    first = prepared(settings(tmp_path)).current_certificate()
    for path in (tmp_path / "data" / "ca").iterdir():
        path.unlink()
    second = prepared(settings(tmp_path)).current_certificate()
    assert second.serial_number != first.serial_number


def test_corrupt_stored_leaf_is_replaced(tmp_path: Path) -> None:
    first = prepared(settings(tmp_path)).current_certificate()
    (tmp_path / "data" / LOCAL_KEY_KEY).write_bytes(b"junk")
    assert prepared(settings(tmp_path)).current_certificate().serial_number != first.serial_number


def test_renew_does_nothing_while_fresh(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path))
    serial = manager.current_certificate().serial_number
    assert manager.renew() is False
    assert manager.current_certificate().serial_number == serial


def test_renew_replaces_a_leaf_past_two_thirds_of_its_life(tmp_path: Path) -> None:
    # A 1 s leaf is backdated 60 s, so it starts out at 60/61 of its life.
    manager = prepared(settings(tmp_path), leaf_lifetime=timedelta(seconds=1))
    serial = manager.current_certificate().serial_number
    assert manager.renew() is True
    assert manager.current_certificate().serial_number != serial
    stored = x509.load_pem_x509_certificate((tmp_path / "data" / LOCAL_CHAIN_KEY).read_bytes())
    assert stored == manager.current_certificate()


@pytest.mark.anyio
async def test_forced_renewal_serves_new_leaf_and_keeps_open_connections(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path))
    client = client_context(manager.root_cert_path())
    async with (
        serve_tls(manager.server_context()) as port,
        open_tls(port, client, "localhost") as (reader, writer, before),
    ):
        assert manager.renew(force=True) is True
        after = await handshake(port, client, "localhost")
        no_sni = await handshake(port, client, "127.0.0.1")
        assert before.serial != after.serial == no_sni.serial
        assert after.serial == manager.current_certificate().serial_number
        assert after.alpn == "h2"
        assert await echo_ok(reader, writer)  # the old session is untouched


@pytest.mark.anyio
async def test_without_renewal_the_same_leaf_keeps_being_served(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path))
    client = client_context(manager.root_cert_path())
    async with serve_tls(manager.server_context()) as port:
        first = await handshake(port, client, "::1")
        assert manager.renew() is False
        assert (await handshake(port, client, "::1")).serial == first.serial


@pytest.mark.anyio
async def test_maintain_returns_promptly_when_stopped(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path))  # default interval: 10 minutes
    stop = asyncio.Event()
    task = asyncio.create_task(manager.maintain(stop))
    await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 1)


@pytest.mark.anyio
async def test_maintain_survives_a_failed_renewal_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager = prepared(
        settings(tmp_path),
        leaf_lifetime=timedelta(seconds=1),
        check_interval=timedelta(milliseconds=10),
    )
    first = manager.current_certificate().serial_number
    real_renew = manager.renew
    calls: list[bool] = []

    def flaky_renew(force: bool = False) -> bool:
        calls.append(force)
        if len(calls) == 1:
            raise StorageError("writing data/certs/local/privkey.pem: disk full")
        return real_renew(force)

    monkeypatch.setattr(manager, "renew", flaky_renew)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="apiclub.tls"):
        task = asyncio.create_task(manager.maintain(stop))
        for _ in range(500):
            if len(calls) >= 2 and manager.current_certificate().serial_number != first:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert manager.current_certificate().serial_number != first
    assert "certificate renewal failed" in caplog.text
    assert "disk full" in caplog.text


def test_unwritable_data_dir_fails_prepare_with_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    manager = CertManager(Settings(data_dir=blocker / "data"))
    with pytest.raises(StorageError, match=r"file/data.*writable"):
        manager.prepare()


def test_auto_mode_warns_about_public_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="apiclub.tls"):
        prepared(settings(tmp_path, domains=("localhost", "api.example.com")))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("api.example.com looks like a public name")


@pytest.mark.parametrize("mode", [TlsMode.INTERNAL, TlsMode.AUTO])
def test_local_names_or_internal_mode_do_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: TlsMode
) -> None:
    domains = ("api.example.com",) if mode is TlsMode.INTERNAL else ("localhost", "app.test")
    with caplog.at_level(logging.WARNING, logger="apiclub.tls"):
        prepared(settings(tmp_path, tls=mode, domains=domains))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_off_mode_has_no_manager(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="APICLUB_TLS=off"):
        CertManager(settings(tmp_path, tls=TlsMode.OFF))


def test_serving_before_prepare_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"prepare\(\)"):
        CertManager(settings(tmp_path)).server_context()


def test_root_cert_path_creates_the_ca_once(tmp_path: Path) -> None:
    config = settings(tmp_path)
    path = root_cert_path(config)
    assert path == tmp_path / "data" / "ca" / "root.pem"
    content = path.read_bytes()
    assert root_cert_path(config) == path
    assert path.read_bytes() == content


def test_without_agreed_terms_public_names_share_the_local_leaf(tmp_path: Path) -> None:
    manager = prepared(settings(tmp_path, domains=("localhost", "api.example.com")))
    assert (manager.local_names, manager.acme_names) == (("localhost", "api.example.com"), ())
    assert manager.certificate_for("api.example.com").covers("api.example.com")
    assert not (tmp_path / "data" / "acme").exists()


def test_with_agreed_terms_public_names_start_on_a_stand_in_without_the_network(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(
        tmp_path,
        domains=("localhost", "127.0.0.1", "api.example.com"),
        acme_agree_tos=True,
        acme_directory="https://127.0.0.1:1/unreachable",
    )
    with caplog.at_level(logging.INFO, logger="apiclub.tls"):
        manager = prepared(config)
    assert manager.acme_names == ("api.example.com",)
    assert manager.local_names == ("localhost", "127.0.0.1")
    standin = manager.certificate_for("api.example.com")
    assert standin.names == ("api.example.com",)
    assert standin.lifetime <= timedelta(days=1, minutes=1)
    assert "api.example.com: serving a stand-in certificate from the local CA" in caplog.text
    # The default (no SNI, IPs) stays the local leaf.
    assert manager.current_certificate() == manager.certificate_for("localhost").leaf
    assert manager.certificate_for("localhost").covers("127.0.0.1")


def test_acme_mode_with_a_missing_ca_bundle_fails_prepare(tmp_path: Path) -> None:
    config = settings(
        tmp_path,
        domains=("api.example.com",),
        tls=TlsMode.ACME,
        acme_agree_tos=True,
        acme_ca_bundle=tmp_path / "missing.pem",
    )
    with pytest.raises(
        CertificateError, match=r"APICLUB_ACME_CA_BUNDLE .*missing.pem is not a file"
    ):
        CertManager(config).prepare()


@pytest.mark.parametrize(
    ("name", "acme"),
    [
        ("1.1.1.1", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.7", False),
        ("192.168.1.2", False),
        ("::1", False),
        ("api.example.com", True),
        ("localhost", False),
    ],
)
def test_auto_mode_orders_public_ips_from_acme_and_keeps_private_ones_local(
    tmp_path: Path, name: str, acme: bool
) -> None:
    settings = Settings(data_dir=tmp_path, domains=(name,), tls=TlsMode.AUTO, acme_agree_tos=True)
    manager = CertManager(settings)
    assert (name in manager.acme_names) is acme
    assert (name in manager.local_names) is not acme
