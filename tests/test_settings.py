from __future__ import annotations

import re
from pathlib import Path

import pytest

from apiclub.db import SQLiteDatabase
from apiclub.db.lifecycle import choose_engine
from apiclub.errors import ConfigError
from apiclub.settings import (
    DEFAULT_DOMAINS,
    LETS_ENCRYPT_STAGING_DIRECTORY,
    AuthMode,
    HstsMode,
    RateLimit,
    Settings,
    TlsMode,
    normalize_name,
    redact_url,
)

RATE_ERROR = (
    "APICLUB_RATE_LIMIT='{}' is not a rate: give REQUESTS/UNIT with REQUESTS at least 1 and "
    "UNIT one of second, minute, hour, day (e.g. 100/minute), or off for no limit"
)


def test_defaults_serve_make_dev_with_no_configuration() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.https_port, settings.http_port) == ("127.0.0.1", 8443, 8080)
    assert settings.domains == DEFAULT_DOMAINS
    assert settings.tls is TlsMode.AUTO
    assert settings.database_path == Path("data/api.db")
    assert settings.max_body_size == 1024 * 1024


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "APICLUB_HOST": "0.0.0.0",
            "APICLUB_HTTPS_PORT": "443",
            "APICLUB_HTTP_PORT": "0",
            "APICLUB_PUBLIC_HTTPS_PORT": "443",
            "APICLUB_DOMAINS": "Example.COM, api.example.com.,example.com",
            "APICLUB_DATA_DIR": "/var/lib/apiclub",
            "APICLUB_TLS": "INTERNAL",
            "APICLUB_MAX_BODY_SIZE": "2048",
            "APICLUB_GRACE_PERIOD": "2.5",
            "APICLUB_LOG_LEVEL": "debug",
        }
    )
    assert settings.domains == ("example.com", "api.example.com")
    assert settings.database_path == Path("/var/lib/apiclub/api.db")
    assert (settings.http_port, settings.public_https_port) == (0, 443)
    assert settings.tls is TlsMode.INTERNAL
    assert (settings.max_body_size, settings.grace_period, settings.log_level) == (
        2048,
        2.5,
        "DEBUG",
    )


def test_db_file_path_keeps_the_tutorials_name() -> None:
    settings = Settings.from_env({"DB_FILE_PATH": "/data/api.db", "APICLUB_DATA_DIR": "/x"})
    assert settings.database_path == Path("/data/api.db")


def test_empty_variables_keep_defaults() -> None:
    assert Settings.from_env({"APICLUB_HTTPS_PORT": "", "APICLUB_DOMAINS": " "}) == Settings()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"APICLUB_HTTPS_PORT": "abc"}, "APICLUB_HTTPS_PORT='abc' is not a port (0-65535)"),
        ({"APICLUB_HTTP_PORT": "70000"}, "APICLUB_HTTP_PORT='70000' is not a port (0-65535)"),
        ({"APICLUB_PUBLIC_HTTPS_PORT": "0"}, "APICLUB_PUBLIC_HTTPS_PORT=0 is not a port (1-65535)"),
        ({"APICLUB_DOMAINS": ",,"}, "APICLUB_DOMAINS=',,' names no domain"),
        ({"APICLUB_DOMAINS": "-bad.example"}, "domain '-bad.example' is not a valid DNS name"),
        (
            {"APICLUB_TLS": "acme!"},
            "APICLUB_TLS='acme!' is not one of auto, acme, internal, files, off",
        ),
        ({"APICLUB_TLS": "acme"}, "APICLUB_TLS=acme needs the ACME server's terms of service"),
        (
            {"APICLUB_ACME_DIRECTORY": "http://acme.test/dir"},
            "APICLUB_ACME_DIRECTORY='http://acme.test/dir' is not an https:// URL",
        ),
        ({"APICLUB_ACME_EMAIL": "you"}, "APICLUB_ACME_EMAIL='you' is not an e-mail address"),
        ({"APICLUB_ACME_AGREE_TOS": "sure"}, "APICLUB_ACME_AGREE_TOS='sure' is not a yes/no"),
        ({"APICLUB_TLS": "files"}, "APICLUB_TLS=files needs APICLUB_CERT_FILE"),
        ({"APICLUB_MAX_BODY_SIZE": "1MB"}, "APICLUB_MAX_BODY_SIZE='1MB' is not a whole number"),
        ({"APICLUB_MAX_BODY_SIZE": "0"}, "APICLUB_MAX_BODY_SIZE=0 must be at least 1"),
        ({"APICLUB_GRACE_PERIOD": "soon"}, "APICLUB_GRACE_PERIOD='soon' is not a number"),
        (
            {"APICLUB_GRACE_PERIOD": "-1"},
            "APICLUB_GRACE_PERIOD=-1.0 is not a number of seconds from 0 to 3600",
        ),
        ({"APICLUB_LOG_LEVEL": "LOUD"}, "APICLUB_LOG_LEVEL='LOUD' is not one of DEBUG"),
        ({"APICLUB_TRUSTED_PROXIES": "nginx"}, "APICLUB_TRUSTED_PROXIES entry 'nginx' is not"),
        ({"APICLUB_HSTS": "yes"}, "APICLUB_HSTS='yes' is not one of auto (public ACME names), on"),
        ({"APICLUB_HSTS_MAX_AGE": "1y"}, "APICLUB_HSTS_MAX_AGE='1y' is not a whole number"),
        ({"APICLUB_HSTS_MAX_AGE": "-1"}, "APICLUB_HSTS_MAX_AGE=-1 must not be negative"),
        ({"APICLUB_RATE_LIMIT": "100 per minute"}, RATE_ERROR.format("100 per minute")),
        ({"APICLUB_RATE_LIMIT": "0/minute"}, RATE_ERROR.format("0/minute")),
        ({"APICLUB_RATE_LIMIT": "5/week"}, RATE_ERROR.format("5/week")),
        ({"APICLUB_RATE_LIMIT": "/second"}, RATE_ERROR.format("/second")),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("LocalHost", "localhost"),
        ("example.com.", "example.com"),
        ("[::1]", "::1"),
        ("0:0::1", "::1"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_names_are_normalised(raw: str, name: str) -> None:
    assert normalize_name(raw) == name


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().https_port = 1  # type: ignore[misc]


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = Settings.from_env({"APICLUB_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,,::1"})
    assert [str(net) for net in settings.trusted_proxies] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]
    assert Settings.from_env({}).trusted_proxies == ()


def test_acme_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "APICLUB_TLS": "acme",
            "APICLUB_ACME_DIRECTORY": LETS_ENCRYPT_STAGING_DIRECTORY,
            "APICLUB_ACME_EMAIL": "you@example.com",
            "APICLUB_ACME_CA_BUNDLE": "/etc/ssl/private-acme.pem",
            "APICLUB_ACME_AGREE_TOS": "yes",
        }
    )
    assert settings.tls is TlsMode.ACME
    assert settings.acme_directory == LETS_ENCRYPT_STAGING_DIRECTORY
    assert settings.acme_email == "you@example.com"
    assert settings.acme_ca_bundle == Path("/etc/ssl/private-acme.pem")
    assert settings.acme_agree_tos is True


def test_acme_defaults_to_lets_encrypt_production_without_agreement() -> None:
    settings = Settings.from_env({})
    assert settings.acme_directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert (settings.acme_email, settings.acme_ca_bundle, settings.acme_agree_tos) == (
        None,
        None,
        False,
    )


def test_hsts_defaults_to_auto_for_a_year() -> None:
    settings = Settings.from_env({})
    assert (settings.hsts, settings.hsts_max_age) == (HstsMode.AUTO, 31536000)


@pytest.mark.parametrize(("raw", "mode"), [("ON", HstsMode.ON), ("off", HstsMode.OFF)])
def test_hsts_settings_are_read(raw: str, mode: HstsMode) -> None:
    settings = Settings.from_env({"APICLUB_HSTS": raw, "APICLUB_HSTS_MAX_AGE": "0"})
    assert (settings.hsts, settings.hsts_max_age) == (mode, 0)


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        ("100/minute", RateLimit(100, "minute")),
        (" 10 / Seconds ", RateLimit(10, "second")),
        ("1/day", RateLimit(1, "day")),
        ("off", None),
    ],
)
def test_rate_limit_is_parsed(raw: str, limit: RateLimit | None) -> None:
    assert Settings.from_env({"APICLUB_RATE_LIMIT": raw}).rate_limit == limit


def test_rate_limit_is_off_by_default_and_knows_its_window() -> None:
    assert Settings.from_env({}).rate_limit is None
    assert (RateLimit(5, "hour").window, str(RateLimit(5, "hour"))) == (3600, "5/hour")


def test_a_rate_limit_built_in_code_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"APICLUB_RATE_LIMIT='3/fortnight' is not a rate"):
        RateLimit(3, "fortnight")


def test_one_worker_and_sqlite_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.workers == 1
    assert settings.database_url is None
    assert settings.database_label == str(Path("data") / "api.db")


def test_workers_are_read_and_bounded() -> None:
    assert Settings.from_env({"APICLUB_WORKERS": "2"}).workers == 2
    for raw in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="APICLUB_WORKERS"):
            Settings.from_env({"APICLUB_WORKERS": raw})


def test_database_url_is_read_and_its_password_never_shown() -> None:
    url = "postgresql://app:s3cret@db.internal:5432/apiclub"
    settings = Settings.from_env({"APICLUB_DATABASE_URL": url})
    assert settings.database_url == url
    assert settings.database_label == "postgresql://app:***@db.internal:5432/apiclub"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app:s3cret@db:3306/apiclub",
        "postgresql://app:s3cret@:5432/apiclub",
        "postgresql://app:s3cret@db:5432/",
        "postgresql://app:s3cret@db:99999/apiclub",
        "postgresql://app:s3cret@db:port/apiclub",
    ],
)
def test_a_bad_database_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match="APICLUB_DATABASE_URL") as caught:
        Settings.from_env({"APICLUB_DATABASE_URL": url})
    assert "s3cret" not in str(caught.value)
    assert "postgresql://user:password@host:5432/database" in str(caught.value)


def test_redact_url_leaves_a_url_without_password_alone() -> None:
    assert redact_url("postgresql://app@db/x") == "postgresql://app@db/x"
    assert redact_url("postgres://app:p@ss@db/x") == "postgres://app:***@db/x"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:se#cret@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:pa/ss@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:p?w@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app:p@ss@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app@db/app?password=s3cret", "postgresql://app@db/app?password=***"),
        (
            "postgresql://app@db/app?sslmode=require&PASSWORD=s3cret",
            "postgresql://app@db/app?sslmode=require&PASSWORD=***",
        ),
    ],
)
def test_redact_url_hides_passwords_that_defeat_url_parsing(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url", ["postgresql://app:se#cret@db/app", "postgresql://app:pa/ss@db/app"]
)
def test_an_unparseable_database_url_error_hides_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"APICLUB_DATABASE_URL": url})
    assert "cret" not in str(caught.value) and "pa/ss" not in str(caught.value)


def test_a_query_string_password_is_not_in_the_label() -> None:
    settings = Settings.from_env(
        {"APICLUB_DATABASE_URL": "postgresql://app@db/app?password=s3cret"}
    )
    assert "s3cret" not in settings.database_label


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "1e400", "3601"])
def test_grace_period_must_be_finite_and_bounded(raw: str) -> None:
    with pytest.raises(ConfigError, match="APICLUB_GRACE_PERIOD"):
        Settings.from_env({"APICLUB_GRACE_PERIOD": raw})


@pytest.mark.parametrize(
    "domains",
    [DEFAULT_DOMAINS, ("localhost",), ("api.localhost", "10.0.0.5"), ("db.internal", "fd00::1")],
)
def test_auth_auto_is_off_while_every_name_is_private(domains: tuple[str, ...]) -> None:
    settings = Settings(domains=domains)
    assert (settings.auth, settings.auth_mode) == (AuthMode.AUTO, AuthMode.OFF)


@pytest.mark.parametrize(
    "domains", [("api.example.com",), ("localhost", "api.example.com"), ("93.184.215.14",)]
)
def test_auth_auto_asks_tokens_for_writes_once_a_public_name_is_served(
    domains: tuple[str, ...],
) -> None:
    assert Settings(domains=domains).auth_mode is AuthMode.WRITES


@pytest.mark.parametrize("raw", ["off", "writes", "ALL", " writes "])
def test_auth_set_explicitly_wins_over_the_names(raw: str) -> None:
    mode = AuthMode(raw.strip().lower())
    for domains in ("localhost", "api.example.com"):
        settings = Settings.from_env({"APICLUB_AUTH": raw, "APICLUB_DOMAINS": domains})
        assert (settings.auth, settings.auth_mode) == (mode, mode)


def test_a_bad_auth_mode_names_the_choices() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"APICLUB_AUTH": "tokens"})
    assert str(refused.value) == (
        "APICLUB_AUTH='tokens' is not one of auto (tokens when a public name is served), off, "
        "writes (POST/PUT/DELETE need a token), all (reads too)"
    )


def test_the_eab_hmac_key_is_read_from_a_file_and_kept_out_of_repr(tmp_path: Path) -> None:
    secret = tmp_path / "hmac"
    secret.write_text("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n")
    settings = Settings.from_env(
        {"APICLUB_ACME_EAB_KID": "kid-1", "APICLUB_ACME_EAB_HMAC_KEY_FILE": str(secret)}
    )
    assert settings.acme_eab == ("kid-1", secret.read_text().strip())
    assert "zWNDZM6" not in repr(settings)
    assert "kid-1" in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APICLUB_ACME_EAB_KID": "kid-1"}, "needs both APICLUB_ACME_EAB_KID and"),
        ({"APICLUB_ACME_EAB_HMAC_KEY": "abc"}, "needs both APICLUB_ACME_EAB_KID and"),
        (
            {"APICLUB_ACME_EAB_KID": "k", "APICLUB_ACME_EAB_HMAC_KEY": "not base64!"},
            "APICLUB_ACME_EAB_HMAC_KEY is not base64url",
        ),
        ({"APICLUB_ACME_EAB_HMAC_KEY_FILE": "/nonexistent/hmac"}, "cannot be read"),
        ({"APICLUB_ACME_PROFILE": "short lived"}, "is not a profile name"),
        ({"APICLUB_ACME_DIRECTORY": "https://a.example/dir,http://b.example/dir"}, "https://"),
    ],
)
def test_bad_acme_settings_name_the_key_and_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_the_acme_directory_takes_an_ordered_list() -> None:
    settings = Settings.from_env(
        {"APICLUB_ACME_DIRECTORY": "https://a.example/dir, https://b.example/dir"}
    )
    assert settings.acme_directories == ("https://a.example/dir", "https://b.example/dir")


def test_the_database_url_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://app:s3cret@db:5432/app\n")
    settings = Settings.from_env({"APICLUB_DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == "postgresql://app:s3cret@db:5432/app"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_a_missing_or_empty_database_url_file_is_refused(
    tmp_path: Path, content: str | None
) -> None:
    secret = tmp_path / "url"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ConfigError, match="APICLUB_DATABASE_URL_FILE="):
        Settings.from_env({"APICLUB_DATABASE_URL_FILE": str(secret)})


def test_the_database_url_and_its_file_together_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://app@db/app")
    environ = {"APICLUB_DATABASE_URL_FILE": str(secret), "APICLUB_DATABASE_URL": "postgresql://x"}
    with pytest.raises(ConfigError, match="both set"):
        Settings.from_env(environ)


def test_request_limits_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "APICLUB_REQUEST_TIMEOUT": "5",
            "APICLUB_REQUEST_MIN_RATE": "100",
            "APICLUB_REQUEST_MAX_TIME": "60",
            "APICLUB_MAX_CONNECTIONS": "500",
        }
    )
    assert (settings.request_timeout, settings.request_min_rate) == (5.0, 100)
    assert (settings.request_max_time, settings.max_connections) == (60.0, 500)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"APICLUB_REQUEST_TIMEOUT": "0"},
            "APICLUB_REQUEST_TIMEOUT=0.0 is not a number of seconds",
        ),
        ({"APICLUB_REQUEST_TIMEOUT": "nan"}, "APICLUB_REQUEST_TIMEOUT=nan"),
        ({"APICLUB_REQUEST_TIMEOUT": "abc"}, "APICLUB_REQUEST_TIMEOUT='abc' is not a number"),
        ({"APICLUB_REQUEST_MAX_TIME": "10"}, "is below APICLUB_REQUEST_TIMEOUT"),
        ({"APICLUB_REQUEST_MIN_RATE": "0"}, "APICLUB_REQUEST_MIN_RATE=0 must be at least 1"),
        ({"APICLUB_MAX_CONNECTIONS": "-1"}, "APICLUB_MAX_CONNECTIONS=-1 must not be negative"),
    ],
)
def test_bad_request_limits_are_refused_naming_the_key(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(environ)


def test_the_sqlite_busy_timeout_is_read_and_reaches_the_engine(tmp_path: Path) -> None:
    assert Settings().db_busy_timeout == 30.0
    settings = Settings.from_env(
        {"APICLUB_DB_BUSY_TIMEOUT": "0.25", "APICLUB_DATA_DIR": str(tmp_path / "data")}
    )
    assert settings.db_busy_timeout == 0.25
    engine = choose_engine(settings)
    assert isinstance(engine, SQLiteDatabase)
    try:
        assert engine.connection_kwargs["timeout"] == 0.25  # sqlite3.connect's busy timeout
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "APICLUB_DB_BUSY_TIMEOUT=0.0 is not a number of seconds above 0"),
        ("nan", "APICLUB_DB_BUSY_TIMEOUT=nan is not a number of seconds above 0"),
        ("7200", "APICLUB_DB_BUSY_TIMEOUT=7200.0 is not a number of seconds above 0"),
        ("abc", "APICLUB_DB_BUSY_TIMEOUT='abc' is not a number of seconds"),
    ],
)
def test_a_bad_busy_timeout_is_refused_naming_the_key(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({"APICLUB_DB_BUSY_TIMEOUT": raw})
