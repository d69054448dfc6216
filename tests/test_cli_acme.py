"""The ACME flags of `apiclub` reach the settings like every other flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiclub.cli import build_parser, flag_values
from apiclub.errors import ConfigError
from apiclub.settings import LETS_ENCRYPT_STAGING_DIRECTORY, Settings, TlsMode


def settings_from(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    args = build_parser().parse_args(list(argv))
    return Settings.from_env({**(environ or {}), **flag_values(args)})


@pytest.mark.parametrize("command", [["serve"], ["certs", "renew"], ["certs", "list"]])
def test_acme_flags_are_settings(command: list[str]) -> None:
    settings = settings_from(
        *command,
        *("--tls", "acme", "--acme-agree-tos", "--acme-email", "you@example.com"),
        *("--acme-directory", LETS_ENCRYPT_STAGING_DIRECTORY, "--acme-ca-bundle", "/ca.pem"),
    )
    assert settings.tls is TlsMode.ACME
    assert settings.acme_agree_tos is True
    assert settings.acme_email == "you@example.com"
    assert settings.acme_directory == LETS_ENCRYPT_STAGING_DIRECTORY
    assert settings.acme_ca_bundle == Path("/ca.pem")


def test_terms_are_not_agreed_without_the_switch_or_its_variable() -> None:
    assert settings_from("serve").acme_agree_tos is False
    assert settings_from("serve", environ={"APICLUB_ACME_AGREE_TOS": "1"}).acme_agree_tos is True
    with pytest.raises(ConfigError, match="APICLUB_TLS=acme needs the ACME server's terms"):
        settings_from("serve", "--tls", "acme")


def test_certs_issue_needs_an_output_directory(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["certs", "issue", "--domain", "api.example.com"])
    assert "--out" in capsys.readouterr().err
