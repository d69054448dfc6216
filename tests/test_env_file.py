"""`--env-file`/APICLUB_ENV_FILE: systemd's and Docker's KEY=VALUE format, clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from apiclub.cli import build_parser, environment
from apiclub.env_file import read_env_file
from apiclub.errors import ConfigError


def test_lines_comments_quotes_and_export(tmp_path: Path) -> None:
    path = tmp_path / "apiclub.env"
    path.write_text(
        "# settings\n\nAPICLUB_DOMAINS=api.example.com\nexport APICLUB_GRACE_PERIOD = 5\n"
        "APICLUB_ACME_EMAIL=\"ops@example.com\"\nAPICLUB_LOG_LEVEL='DEBUG'\nEMPTY=\n"
    )
    assert read_env_file(path) == {
        "APICLUB_DOMAINS": "api.example.com",
        "APICLUB_GRACE_PERIOD": "5",
        "APICLUB_ACME_EMAIL": "ops@example.com",
        "APICLUB_LOG_LEVEL": "DEBUG",
        "EMPTY": "",
    }


def test_a_line_that_is_not_key_value_is_named_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "apiclub.env"
    path.write_text("APICLUB_DOMAINS=a.example\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"line 2 is not KEY=VALUE: 'this is not a setting'"):
        read_env_file(path)


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"APICLUB_ENV_FILE='.*nope.env' cannot be read"):
        read_env_file(tmp_path / "nope.env")


def test_the_file_wins_over_the_environment_and_flags_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "apiclub.env"
    path.write_text("APICLUB_GRACE_PERIOD=5\nAPICLUB_LOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("APICLUB_ENV_FILE", str(path))
    monkeypatch.setenv("APICLUB_GRACE_PERIOD", "1")
    monkeypatch.setenv("APICLUB_HSTS", "off")
    args: argparse.Namespace = build_parser().parse_args(["serve", "--log-level", "ERROR"])
    values = environment(args)
    assert (values["APICLUB_GRACE_PERIOD"], values["APICLUB_LOG_LEVEL"]) == ("5", "ERROR")
    assert values["APICLUB_HSTS"] == "off"
