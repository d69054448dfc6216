"""Behind a proxy (TLS off) the API still keeps certificates in the store for the proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography import x509

from apiclub.errors import ConfigError
from apiclub.settings import Settings, TlsMode
from apiclub.tls import CertManager
from tests.server.conftest import serving

pytestmark = pytest.mark.anyio

NAMES = ("apiclub.test", "api.apiclub.test", "127.0.0.1")
TOKEN = "q-6USriwRYxjRICaYpRevU-nJvrGQI8nxiG2RitF56Q"
THUMB = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def proxy_settings(tmp_path: Path, *, manage: bool) -> Settings:
    return Settings(data_dir=tmp_path / "data", tls=TlsMode.OFF, domains=NAMES, manage_certs=manage)


async def test_live_certificates_are_kept_for_each_name_and_challenges_answered(
    tmp_path: Path,
) -> None:
    settings = proxy_settings(tmp_path, manage=True)
    live = settings.data_dir / "certs" / "live"
    token_dir = settings.data_dir / "acme" / "challenges"
    async with serving(settings, redirect=False) as server, httpx.AsyncClient() as client:
        assert server.cert_manager is not None
        server.cert_manager.challenges.add(TOKEN, f"{TOKEN}.{THUMB}")
        base = f"http://127.0.0.1:{server.api_port}"
        known = await client.get(f"{base}/.well-known/acme-challenge/{TOKEN}")
        unknown = await client.get(f"{base}/.well-known/acme-challenge/nope")
        api = await client.get(f"{base}/", headers={"host": "api.apiclub.test"})
    assert (known.status_code, known.text) == (200, f"{TOKEN}.{THUMB}")
    assert unknown.status_code == 404
    assert api.json() == {"status": "ok"}
    assert token_dir.is_dir()
    root = x509.load_pem_x509_certificate((settings.data_dir / "ca" / "root.pem").read_bytes())
    for name in NAMES:
        chain = (live / name / "fullchain.pem").read_bytes()
        key = live / name / "privkey.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        leaf = x509.load_pem_x509_certificate(chain)
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in [str(v) for v in sans.get_values_for_type(x509.DNSName)] + [
            str(v) for v in sans.get_values_for_type(x509.IPAddress)
        ]
        leaf.verify_directly_issued_by(root)


async def test_without_manage_certs_no_certificate_is_written(tmp_path: Path) -> None:
    settings = proxy_settings(tmp_path, manage=False)
    async with serving(settings, redirect=False) as server, httpx.AsyncClient() as client:
        assert server.cert_manager is None
        response = await client.get(
            f"http://127.0.0.1:{server.api_port}/.well-known/acme-challenge/tok"
        )
    assert response.status_code == 404  # the API's own 404: no challenge responder
    assert not (settings.data_dir / "certs").exists()


def test_a_cert_manager_needs_tls_or_manage_certs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="APICLUB_TLS=off serves no certificates"):
        CertManager(proxy_settings(tmp_path, manage=False))


def test_manage_certs_parses_yes_and_no() -> None:
    assert Settings.from_env({"APICLUB_MANAGE_CERTS": "yes"}).manage_certs is True
    assert Settings.from_env({"APICLUB_MANAGE_CERTS": "0"}).manage_certs is False
    with pytest.raises(ConfigError, match="APICLUB_MANAGE_CERTS='maybe' is not a yes/no value"):
        Settings.from_env({"APICLUB_MANAGE_CERTS": "maybe"})
