from __future__ import annotations

import pytest

from apiclub.errors import ConfigError
from apiclub.settings import Settings


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_backup_every_takes_durations(raw: str, seconds: float) -> None:
    assert Settings.from_env({"APICLUB_BACKUP_EVERY": raw}).backup_every == seconds


@pytest.mark.parametrize("raw", ["hourly", "1w", "-5", "0"])
def test_a_bad_backup_interval_names_the_fix(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"APICLUB_BACKUP_EVERY=.*e\.g\. 1h"):
        Settings.from_env({"APICLUB_BACKUP_EVERY": raw})


def test_backup_keep_must_be_positive() -> None:
    assert Settings.from_env({"APICLUB_BACKUP_KEEP": "3"}).backup_keep == 3
    with pytest.raises(ConfigError, match="APICLUB_BACKUP_KEEP=0 must be at least 1"):
        Settings.from_env({"APICLUB_BACKUP_KEEP": "0"})


def test_the_backup_directory_defaults_beside_the_data_directory(tmp_path: object) -> None:
    settings = Settings.from_env({"APICLUB_DATA_DIR": "/srv/apiclub/data"})
    assert str(settings.backup_directory) == "/srv/apiclub/backups"


@pytest.mark.parametrize(
    "url",
    [
        "file:///var/replica",
        "s3://bucket/db?endpoint=http://127.0.0.1:9000",
        "sftp://me@host/db?host-key-path=/etc/apiclub/replica.pub",
        "sftp://me@host:2222/db?host-key-path=/k.pub&key-path=/id_ed25519",
    ],
)
def test_replica_urls(url: str) -> None:
    assert Settings.from_env({"APICLUB_REPLICATE": url}).replicate == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x", "is not a replica URL"),
        ("s3://KEY:s3cr3t@bucket/db", "holds a password"),
        ("sftp://me:pw@host/db", "holds a password"),
        ("file://relative/path", "absolute path"),
        ("sftp://me@host/db", "does not say which server to trust"),
        ("sftp://host/db?host-key-path=/k.pub", "names no user"),
        ("sftp://me@host/db?host-key-path=/k&port=2", "'port' is not a parameter"),
    ],
)
def test_bad_replica_urls_are_refused_without_echoing_secrets(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({"APICLUB_REPLICATE": url})
    assert "s3cr3t" not in str(caught.value) and ":pw@" not in str(caught.value)


def test_replication_is_for_sqlite() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL's own replication"):
        Settings.from_env(
            {"APICLUB_REPLICATE": "file:///r", "APICLUB_DATABASE_URL": "postgresql://u@h/d"}
        )
